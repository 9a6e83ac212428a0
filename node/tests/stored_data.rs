//! Stored data survives upgrades: a data directory written by an earlier release (the fixture
//! under `tests/fixtures/`, made once by `write_fixture` with the code of that release) opens
//! with this build, which migrates it on open, with every mesh, node, token, key, policy
//! version and audit entry intact; replaying its log from the start gives the same state; and
//! a database from a future release is refused with a clear message.
//!
//! Regenerate a fixture only when a release changes the format, and keep the old ones (the
//! generator writes `tests/fixtures/data-dir-new.tar.gz`; run it with the old release's code):
//! `X0T_WRITE_FIXTURE=1 cargo test -p x0t-node --test stored_data -- --ignored write_fixture`
//! (then rename the files for the format they hold).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command as Process;
use std::time::Duration;

use common::{eventually, register};
use openraft::RaftLogReader;
use openraft::storage::RaftLogStorage;
use serde_json::{Value, json};
use x0t_client::ApiClient;
use x0t_consensus::{LogStore, SledStorage, StateMachineStore};
use x0t_ledger::{ApplyMeta, Ledger};
use x0t_node::api::{ApproveNode, CreateApiKey, CreateJoinToken, CreateToken, Reason};
use x0t_node::testnet;
use x0t_types::KeyRole;
use x0t_types::api::{CreateMesh, SetAcl, UpdateSettings};

/// Data directories written by earlier releases, each as `node1/` and `expected.json`: every
/// record its ledger held, as that release read it back, and its admin key. Format 3: the
/// release before the ledger's per-domain records; format 4: the release before each domain
/// had its own commands, outcomes and refusals (its log and remembered results are migrated).
const FORMAT3: &str = "tests/fixtures/data-dir-format3.tar.gz";
const FORMAT4: &str = "tests/fixtures/data-dir-format4.tar.gz";
/// Where `write_fixture` writes (rename the file for the format it holds, and add a test).
const FIXTURE: &str = "tests/fixtures/data-dir-new.tar.gz";

const POLICY_V1: &str = r#"version = 1
profiles = ["robot-to-server"]

[[rule]]
name = "robots reach the broker"
action = "allow"
src = "class:robot"
dst = "tag:broker"
ports = ["tcp/1883"]
"#;

const POLICY_V2: &str = r#"version = 1
profiles = ["robot-to-server"]

[pq]
robot = "constrained"

[[rule]]
name = "robots reach the broker"
action = "allow"
src = "class:robot"
dst = "tag:broker"
ports = ["tcp/1883", "tcp/8883"]

[[test]]
name = "mqtt over tls"
src = "class:robot"
dst = "tag:broker"
port = 8883
expect = "allow"
"#;

fn token(pre_approved: bool, reusable: bool, tags: &[&str]) -> CreateToken {
    CreateToken {
        ttl_secs: Some(7 * 86_400),
        reusable,
        uses: None,
        pre_approved,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    }
}

/// Runs `x0t up` as node 1 of a testnet in `root` (a process: its database is closed for
/// sure when it exits); answers its client without a key.
async fn run_anchor(root: &Path, extra: &[&str]) -> ApiClient {
    let exe = Path::new(env!("CARGO_BIN_EXE_x0t"));
    let base = 46_000 + (std::process::id() % 500) as u16 * 10;
    let extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
    let pid = testnet::spawn_node(exe, root, 1, base, None, &extra).unwrap();
    let info = testnet::wait_ready(root, 1, pid, Duration::from_secs(30))
        .await
        .unwrap();
    ApiClient::new(&info.api_url, None).unwrap()
}

/// Writes the fixture with this build: one anchor, two meshes, nodes in every state, tokens
/// (spent, reusable, rotated out, re-issued), a viewer key, an anchor-join token, three policy
/// versions, and the audit entries of all of that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fixture; run by hand when a release changes the storage format"]
async fn write_fixture() {
    assert!(
        std::env::var_os("X0T_WRITE_FIXTURE").is_some(),
        "set X0T_WRITE_FIXTURE=1 to overwrite {FIXTURE}"
    );
    let root = tempfile::tempdir().unwrap();
    let _cleanup = testnet::KillOnDrop(root.path().to_path_buf());
    let dir = testnet::node_dir(root.path(), 1);
    // A snapshot is taken on the way, so the fixture holds one to migrate too; the log is
    // kept whole, so it can be replayed from its first entry.
    let anon = run_anchor(
        root.path(),
        &["--snapshot-every", "20", "--keep-after-snapshot", "100000"],
    )
    .await;
    let key = std::fs::read_to_string(dir.join(x0t_node::run::ADMIN_KEY_FILE)).unwrap();
    let admin = ApiClient::new(anon.base(), Some(key.trim().to_owned())).unwrap();
    let mesh = "default";

    admin
        .create_mesh(&CreateMesh {
            name: "factory".into(),
            description: "line 3".into(),
            plan: None,
        })
        .await
        .unwrap();
    admin
        .update_settings(
            "factory",
            &UpdateSettings {
                description: "line 3, hall b".into(),
                expected_version: Some(1),
            },
        )
        .await
        .unwrap();
    admin
        .create_api_key(&CreateApiKey {
            role: KeyRole::Viewer,
            label: "dashboards".into(),
        })
        .await
        .unwrap();
    admin
        .create_join_token(&CreateJoinToken {
            ttl_secs: Some(3_600),
        })
        .await
        .unwrap();

    // Nodes in every state: approved at once, approved by an admin, rejected, revoked,
    // pending, and one replaced through a re-issued token.
    let single = admin
        .create_token(mesh, &token(true, false, &["line-3"]))
        .await
        .unwrap();
    let (first, answer) = register(&anon, mesh, Some(single.token.clone())).await;
    answer.unwrap();
    let reusable = admin
        .create_token(mesh, &token(false, true, &[]))
        .await
        .unwrap();
    let mut pending = Vec::new();
    for _ in 0..4 {
        let (key, answer) = register(&anon, mesh, Some(reusable.token.clone())).await;
        answer.unwrap();
        pending.push(key.node_id().to_string());
    }
    admin
        .approve(
            mesh,
            &pending[0],
            &ApproveNode {
                tags: Some(vec!["broker".into()]),
            },
        )
        .await
        .unwrap();
    admin
        .approve(mesh, &pending[1], &ApproveNode { tags: None })
        .await
        .unwrap();
    let reason = |text: &str| Reason {
        reason: text.into(),
    };
    admin
        .reject_or_revoke(mesh, &pending[2], "reject", &reason("unknown device"))
        .await
        .unwrap();
    admin
        .reject_or_revoke(mesh, &pending[1], "revoke", &reason("decommissioned"))
        .await
        .unwrap();
    let reissued = admin
        .reissue_token(
            mesh,
            &first.node_id().to_string(),
            &token(false, false, &[]),
        )
        .await
        .unwrap();
    register(&anon, mesh, Some(reissued.token)).await.1.unwrap();
    admin.rotate_tokens(mesh).await.unwrap();
    admin
        .create_token(mesh, &token(false, true, &["spare"]))
        .await
        .unwrap();
    let (_, answer) = register(&anon, "factory", None).await;
    answer.unwrap();

    for (document, expected) in [(POLICY_V1, 0), (POLICY_V2, 1), (POLICY_V1, 2)] {
        admin
            .set_acl(
                mesh,
                &SetAcl {
                    document: document.into(),
                    expected_version: Some(expected),
                },
            )
            .await
            .unwrap();
    }
    eventually("a snapshot", Duration::from_secs(20), async || {
        anon.cluster().await.ok()?.snapshot_index
    })
    .await;
    testnet::down(root.path()).await.unwrap();
    for file in ["node.json", "x0t.log"] {
        let _ = std::fs::remove_file(dir.join(file));
    }

    let expected = json!({
        "ledger": ledger_dump(&open_stores(&dir.join("db")).1.read(|s| s.ledger.clone())),
        "admin_key": key.trim(),
    });
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(manifest.join("tests/fixtures")).unwrap();
    std::fs::write(
        root.path().join("expected.json"),
        serde_json::to_string_pretty(&expected).unwrap() + "\n",
    )
    .unwrap();
    let status = Process::new("tar")
        .args(["-czf"])
        .arg(manifest.join(FIXTURE))
        .args([
            "-C",
            root.path().to_str().unwrap(),
            "node1",
            "expected.json",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "tar failed");
}

/// Unpacks `fixture` into `into`; answers the anchor's data directory.
fn unpack(fixture: &str, into: &Path) -> std::path::PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Process::new("tar")
        .arg("-xzf")
        .arg(manifest.join(fixture))
        .arg("-C")
        .arg(into)
        .status()
        .expect("tar runs");
    assert!(status.success(), "unpacking {fixture} failed");
    testnet::node_dir(into, 1)
}

fn expected(root: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root.join("expected.json")).unwrap()).unwrap()
}

fn open_stores(db: &Path) -> (LogStore, StateMachineStore) {
    // A node stopped in this process lets go of its database when its last Raft task ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let storage = loop {
        match SledStorage::open(db) {
            Ok(storage) => break storage,
            Err(e) if e.to_string().contains("in use") && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("opening {}: {e}", db.display()),
        }
    };
    let log = LogStore::new(storage.tree("raft-log").unwrap()).unwrap();
    let state = StateMachineStore::open(
        storage.tree("state").unwrap(),
        storage.tree("snapshot").unwrap(),
    )
    .unwrap();
    (log, state)
}

/// Every record of a ledger as JSON, by kind and key: the same shape whatever module the
/// record types live in.
fn ledger_dump(ledger: &Ledger) -> Value {
    let mut kinds: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut push = |kind, value: Value| kinds.entry(kind).or_default().push(value);
    for mesh in ledger.meshes() {
        push("mesh", serde_json::to_value(mesh).unwrap());
        for node in ledger.nodes(&mesh.id) {
            push("node", serde_json::to_value(node).unwrap());
        }
        for token in ledger.join_tokens(&mesh.id) {
            push("join_token", serde_json::to_value(token).unwrap());
        }
        for acl in ledger.acl_history(&mesh.id) {
            push("acl", serde_json::to_value(acl).unwrap());
        }
        for entry in ledger.audit_entries(Some(&mesh.id), 0, usize::MAX) {
            push("audit", serde_json::to_value(entry).unwrap());
        }
    }
    for entry in ledger.audit_entries(None, 0, usize::MAX) {
        push("audit", serde_json::to_value(entry).unwrap());
    }
    for anchor in ledger.anchors() {
        push("anchor", serde_json::to_value(anchor).unwrap());
    }
    for (id, key) in ledger.anchor_keys() {
        push("anchor_key", json!([id, key]));
    }
    for key in ledger.api_keys() {
        push("api_key", serde_json::to_value(key).unwrap());
    }
    for token in ledger.anchor_join_tokens() {
        push("anchor_join_token", serde_json::to_value(token).unwrap());
    }
    push("remembered_requests", json!(ledger.remembered_requests()));
    serde_json::to_value(kinds).unwrap()
}

/// Replays every entry of the log from the first one into an empty ledger.
async fn replay(log: &mut LogStore, up_to: u64) -> Ledger {
    let mut ledger = Ledger::new();
    let first = log.get_log_state().await.unwrap().last_purged_log_id;
    assert!(first.is_none(), "the fixture's log is whole");
    for entry in log.try_get_log_entries(0..=up_to).await.unwrap() {
        if let openraft::EntryPayload::Normal(proposal) = &entry.payload {
            for (position, proposed) in (0u32..).zip(&proposal.commands) {
                let _ = ledger.apply(
                    proposed,
                    ApplyMeta {
                        index: entry.log_id.index,
                        position,
                        timestamp: proposal.proposed_at,
                    },
                );
            }
        }
    }
    ledger.take_changes();
    ledger
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_format_3_opens_with_everything_intact() {
    opens_with_everything_intact(FORMAT3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_the_previous_release_opens_with_everything_intact() {
    opens_with_everything_intact(FORMAT4).await;
}

/// Opens `fixture`'s data directory with this build (migrating it), replays its log, runs a
/// node on it, and reopens it: every record is as the old release had it.
async fn opens_with_everything_intact(fixture: &str) {
    let root = tempfile::tempdir().unwrap();
    let dir = unpack(fixture, root.path());
    let expected = expected(root.path());

    // Migrated on open: every record as the old build had it.
    let (mut log, state) = open_stores(&dir.join("db"));
    let ledger = state.read(|s| s.ledger.clone());
    let last = state.read(|s| s.last_applied).unwrap().index;
    assert_same(
        &ledger_dump(&ledger),
        &expected["ledger"],
        "the migrated state",
    );
    // The log replays from its first entry to the same state: old commands, with the audit
    // statements their anchor signed over the old encoding, still apply exactly as before.
    let replayed = replay(&mut log, last).await;
    assert_same(
        &ledger_dump(&replayed),
        &expected["ledger"],
        "the replayed log",
    );
    assert!(replayed == ledger, "replay and stored state agree");
    drop((log, state));

    // The node runs on it: nodes, policy versions and audit chains as they were, the old
    // admin key still admin.
    let _cleanup = testnet::KillOnDrop(root.path().to_path_buf());
    let anon = run_anchor(root.path(), &[]).await;
    let admin = ApiClient::new(anon.base(), Some(want_key(&expected).to_owned())).unwrap();
    eventually("a leader", Duration::from_secs(20), async || {
        anon.cluster().await.ok()?.leader
    })
    .await;
    check_through_the_api(&anon, &admin, &expected).await;
    testnet::down(root.path()).await.unwrap();

    // Opened again (now in the current format): every record is still there (the run
    // above added a node, a token rotation and their audit entries).
    let (_, state) = open_stores(&dir.join("db"));
    let reopened = ledger_dump(&state.read(|s| s.ledger.clone()));
    for kind in ["node", "acl", "api_key", "audit", "anchor_key"] {
        for record in expected["ledger"][kind].as_array().unwrap() {
            assert!(
                reopened[kind].as_array().unwrap().contains(record),
                "a {kind} record is missing or changed after a run and a reopen"
            );
        }
    }
}

/// Asserts two ledger dumps are equal, naming the first record kind and position that
/// differ (a dump is megabytes; printing it helps nobody).
fn assert_same(actual: &Value, expected: &Value, what: &str) {
    let (Some(actual), Some(expected)) = (actual.as_object(), expected.as_object()) else {
        panic!("{what}: not a ledger dump");
    };
    let kinds: Vec<&String> = actual.keys().chain(expected.keys()).collect();
    for kind in kinds {
        let (a, e) = (&actual.get(kind), &expected.get(kind));
        if a == e {
            continue;
        }
        let (a, e) = (
            a.and_then(Value::as_array).cloned().unwrap_or_default(),
            e.and_then(Value::as_array).cloned().unwrap_or_default(),
        );
        let at = (0..a.len().max(e.len()))
            .find(|&i| a.get(i) != e.get(i))
            .unwrap_or(0);
        panic!(
            "{what}: {kind} records differ ({} here, {} expected), first at position {at}",
            a.len(),
            e.len()
        );
    }
}

fn want_key(expected: &Value) -> &str {
    expected["admin_key"].as_str().unwrap()
}

async fn check_through_the_api(anon: &ApiClient, admin: &ApiClient, expected: &Value) {
    let want = &expected["ledger"];
    let nodes = admin.list_nodes("default", &[]).await.unwrap();
    let stored: Vec<&Value> = want["node"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["mesh"] == "default")
        .collect();
    assert_eq!(nodes.len(), stored.len());
    for view in &nodes {
        let record = stored
            .iter()
            .find(|n| n["node_id"] == view.node_id.as_str())
            .unwrap();
        assert_eq!(
            serde_json::to_value(view.state).unwrap(),
            record["state"],
            "{}",
            view.node_id
        );
    }
    let history: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/meshes/default/acl/history",
            admin.base()
        ))
        .bearer_auth(want_key(expected))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 3, "{history}");
    for mesh in ["default", "factory"] {
        let verified = admin.audit_verify(mesh).await.unwrap();
        assert!(verified.ok, "{mesh}: {verified:?}");
        let stored = want["audit"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["mesh"] == mesh)
            .count() as u64;
        assert!(verified.entries >= stored, "{mesh}: {verified:?}");
    }
    // The viewer key reads and may not write; the admin key writes.
    let viewer = want["api_key"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == "dashboards")
        .unwrap();
    assert_eq!(viewer["role"], "viewer");
    let (_, pending) = register(anon, "factory", None).await;
    pending.unwrap();
    admin
        .rotate_tokens("default")
        .await
        .expect("the old admin key still writes");
}

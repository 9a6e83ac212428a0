//! The `x0t` binary as a user runs it.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn x0t(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_x0t"))
        .args(args)
        .env_remove("X0T_DATA_DIR")
        .env("RUST_LOG", "warn")
        .output()
        .expect("x0t runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn dir_arg(dir: &Path) -> String {
    dir.to_str().unwrap().to_owned()
}

#[test]
fn keygen_refuses_to_overwrite_and_keeps_the_first_key() {
    let temp = tempfile::tempdir().unwrap();
    let dir = dir_arg(&temp.path().join("node"));
    let key_path = temp.path().join("node/identity.key");

    let first = x0t(&["keygen", "--dir", &dir]);
    assert!(first.status.success(), "{}", stderr(&first));
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key file must be 0600");
    let original = std::fs::read(&key_path).unwrap();
    let node_id = stdout(&first)
        .lines()
        .find_map(|l| l.strip_prefix("node id: "))
        .unwrap()
        .to_owned();

    let second = x0t(&["keygen", "--dir", &dir]);
    assert!(!second.status.success());
    let message = stderr(&second);
    assert!(
        message.contains("already exists") && message.contains("--force"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&key_path).unwrap(),
        original,
        "first key untouched"
    );

    let id = x0t(&["id", "--dir", &dir]);
    assert!(id.status.success(), "{}", stderr(&id));
    assert!(stdout(&id).contains(&node_id));
    assert!(stdout(&id).contains("ML-DSA-65"));

    let json = x0t(&["id", "--dir", &dir, "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["node_id"], node_id.as_str());

    let forced = x0t(&["keygen", "--dir", &dir, "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(
        std::fs::read(&key_path).unwrap(),
        original,
        "--force replaces the key"
    );
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn id_explains_missing_and_exposed_keys() {
    let temp = tempfile::tempdir().unwrap();
    let dir = dir_arg(temp.path());

    let missing = x0t(&["id", "--dir", &dir]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("x0t keygen"),
        "{}",
        stderr(&missing)
    );

    assert!(
        x0t(&["keygen", "--dir", &dir, "--algorithm", "ml-dsa-44"])
            .status
            .success()
    );
    let key_path = temp.path().join("identity.key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let exposed = x0t(&["id", "--dir", &dir]);
    assert!(!exposed.status.success());
    assert!(stderr(&exposed).contains("0640"), "{}", stderr(&exposed));

    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ok = x0t(&["id", "--dir", &dir]);
    assert!(stdout(&ok).contains("ML-DSA-44"), "{}", stdout(&ok));

    let bytes = std::fs::read(&key_path).unwrap();
    std::fs::write(&key_path, &bytes[..bytes.len() / 3]).unwrap();
    let truncated = x0t(&["id", "--dir", &dir]);
    assert!(!truncated.status.success());
    assert!(
        stderr(&truncated).contains("truncated"),
        "{}",
        stderr(&truncated)
    );
}

#[test]
fn data_dir_comes_from_the_environment() {
    let temp = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_x0t"))
        .args(["keygen"])
        .env("X0T_DATA_DIR", temp.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(temp.path().join("identity.key").exists());
}

#[test]
fn version_and_json_logs() {
    let version = x0t(&["version"]);
    assert!(stdout(&version).starts_with(&format!("x0t {}", env!("CARGO_PKG_VERSION"))));

    let temp = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_x0t"))
        .args([
            "--log-format",
            "json",
            "keygen",
            "--dir",
            &dir_arg(temp.path()),
        ])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let line = stderr(&output);
    let log: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(log["fields"]["message"], "identity key written");
}

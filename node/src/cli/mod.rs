//! The `x0t` command groups that talk to a node's public API or act on this machine, one
//! module per domain (the registration list of the CLI: a new domain adds its module here
//! and one variant in `main.rs`'s `Command`). They use only the public API, through
//! `x0t-client`. Tables for humans, `--json` for scripts.

use std::path::PathBuf;

use anyhow::Context;
use x0t_client::ApiClient;
use x0t_node::identity;
use x0t_node::run::{ADMIN_KEY_FILE, NodeInfo};

pub(crate) mod acl;
pub(crate) mod agent;
pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod cluster;
pub(crate) mod member;
pub(crate) mod meshes;
pub(crate) mod nodes;
pub(crate) mod tokens;

/// How client commands find a node and authenticate.
#[derive(Debug, clap::Args)]
pub(crate) struct ClientArgs {
    #[arg(long, env = "X0T_API", global = true)]
    api: Option<String>,
    /// API key [default: $X0T_KEY, else <data dir>/admin.key]
    #[arg(long, env = "X0T_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
    /// Data directory of the local node [default: $X0T_DATA_DIR, else /var/lib/x0t as root,
    /// else ~/.local/share/x0t]
    #[arg(long = "dir", env = identity::DATA_DIR_ENV, global = true)]
    client_dir: Option<PathBuf>,
}

/// Which mesh an admin command acts on.
#[derive(Debug, clap::Args)]
pub(crate) struct MeshArg {
    /// The mesh.
    #[arg(long, env = "X0T_MESH", default_value = "default", global = true)]
    pub(crate) mesh: String,
}

impl ClientArgs {
    pub(crate) fn client(&self) -> anyhow::Result<ApiClient> {
        let dir = self
            .client_dir
            .clone()
            .unwrap_or_else(identity::default_data_dir);
        let api = match &self.api {
            Some(api) => api.clone(),
            None => NodeInfo::load(&dir)
                .map(|info| info.api_url)
                .context("no --api / X0T_API given and no running node in the data dir")?,
        };
        let key = self
            .key
            .clone()
            .or_else(|| std::fs::read_to_string(dir.join(ADMIN_KEY_FILE)).ok());
        Ok(ApiClient::new(&api, key)?)
    }

    /// A gRPC admin client for the same node and key.
    pub(crate) async fn admin(&self) -> anyhow::Result<x0t_client::AdminClient> {
        let http = self.client()?;
        let key = self.key.clone().or_else(|| {
            let dir = self
                .client_dir
                .clone()
                .unwrap_or_else(identity::default_data_dir);
            std::fs::read_to_string(dir.join(ADMIN_KEY_FILE)).ok()
        });
        Ok(x0t_client::AdminClient::connect(http.base(), key).await?)
    }
}

/// Parses `90m`, `24h`, `7d`, `3600s` into seconds.
pub(crate) fn parse_ttl(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?}: add a unit (s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number then s, m, h or d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        other => return Err(format!("unknown unit {other:?}: use s, m, h or d")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Prints `value` as pretty JSON.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttls_parse_with_units() {
        assert_eq!(parse_ttl("3600s"), Ok(3_600));
        assert_eq!(parse_ttl("90m"), Ok(5_400));
        assert_eq!(parse_ttl(" 24h "), Ok(86_400));
        assert_eq!(parse_ttl("30d"), Ok(2_592_000));
        assert!(parse_ttl("12").unwrap_err().contains("unit"));
        assert!(parse_ttl("3w").unwrap_err().contains("unknown unit"));
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("99999999999999999999d").is_err());
    }
}

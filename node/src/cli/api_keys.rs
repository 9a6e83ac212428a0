//! `x0t keys …`: API keys.

use clap::Subcommand;
use x0t_client::ApiClient;
use x0t_node::api::CreateApiKey;
use x0t_types::KeyRole;

use super::{ClientArgs, print_json};

/// `x0t keys`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    which: KeysCommand,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `x0t keys …`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    keys(args.client.client()?, args.which).await
}

/// `x0t keys …`.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create an API key (shown once).
    Create {
        /// admin or viewer (reads only).
        #[arg(long, default_value = "viewer")]
        role: String,
        /// A label.
        #[arg(long, default_value = "")]
        label: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `x0t keys …`.
pub(crate) async fn keys(client: ApiClient, which: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Create { role, label, json } = which;
    let role: KeyRole = role.parse()?;
    let key = client.create_api_key(&CreateApiKey { role, label }).await?;
    if json {
        print_json(&key)
    } else {
        println!("{}", key.key);
        eprintln!(
            "{} key {} (shown once; only its hash is stored)",
            role.name(),
            key.key_id
        );
        Ok(())
    }
}

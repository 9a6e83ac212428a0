//! `x0t tokens …`: issue and rotate a mesh's join tokens.

use clap::Subcommand;
use x0t_client::AdminClient;
use x0t_node::api::TokenView;
use x0t_proto::pb;

use super::{ClientArgs, MeshArg, parse_ttl, print_json};

/// `x0t tokens`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    which: TokensCommand,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    mesh: MeshArg,
}

/// Runs `x0t tokens …`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    tokens(args.client.admin().await?, &args.mesh.mesh, args.which).await
}

/// `x0t tokens …`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokensCommand {
    /// Issue a join token (shown once; the ledger keeps its hash).
    Create {
        /// Validity (s, m, h or d), 1h to 30d.
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: u64,
        /// Usable by many nodes (else single use).
        #[arg(long)]
        reusable: bool,
        /// For a reusable token: at most this many registrations.
        #[arg(long)]
        uses: Option<u32>,
        /// Nodes registering with it are approved at once.
        #[arg(long)]
        pre_approved: bool,
        /// Tags it grants, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Invalidate every join token of the mesh issued so far.
    Rotate {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn token_detail(t: &TokenView) {
    println!("{}", t.token);
    eprintln!(
        "join token {} for mesh {}: {}{}{}, tags [{}], valid until {}; only its hash is stored",
        t.token_id,
        t.mesh,
        t.usage,
        t.max_uses
            .filter(|_| t.usage == "reusable")
            .map(|n| format!(" (at most {n} uses)"))
            .unwrap_or_default(),
        if t.pre_approved { ", pre-approved" } else { "" },
        t.tags.join(","),
        x0t_types::Timestamp(t.not_after_ms)
    );
}

/// `x0t tokens …`.
pub(crate) async fn tokens(
    client: AdminClient,
    mesh: &str,
    which: TokensCommand,
) -> anyhow::Result<()> {
    match which {
        TokensCommand::Create {
            ttl,
            reusable,
            uses,
            pre_approved,
            tags,
            json,
        } => {
            let token = client
                .create_token(pb::CreateTokenRequest {
                    mesh: mesh.to_owned(),
                    ttl_secs: ttl,
                    reusable,
                    uses,
                    pre_approved,
                    tags: tags.into_iter().filter(|t| !t.is_empty()).collect(),
                })
                .await?;
            if json {
                print_json(&token)
            } else {
                token_detail(&token);
                Ok(())
            }
        }
        TokensCommand::Rotate { json } => {
            let rotated = client.rotate_tokens(mesh).await?;
            if json {
                print_json(&rotated)
            } else {
                println!(
                    "rotated: epoch {}, {} recorded token(s) no longer valid",
                    rotated.epoch, rotated.invalidated
                );
                Ok(())
            }
        }
    }
}

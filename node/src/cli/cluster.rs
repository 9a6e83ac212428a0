//! `x0t cluster …`: the control plane's Raft state and anchor-join tokens.

use super::{ClientArgs, parse_ttl};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Leader, term, voters, learners, log and applied indices.
    Status {
        #[command(flatten)]
        client: ClientArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a single-use anchor-join token (shown once; the cluster keeps its hash).
    JoinToken {
        #[command(flatten)]
        client: ClientArgs,
        /// Validity: a number with s, m, h or d, between 1h and 30d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `x0t cluster …`.
pub(crate) async fn run(which: ClusterCommand) -> anyhow::Result<()> {
    match which {
        ClusterCommand::Status { client, json } => {
            let status = client.client()?.cluster().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(())
        }
        ClusterCommand::JoinToken { client, ttl, json } => {
            let issued = client
                .client()?
                .create_join_token(&x0t_node::api::CreateJoinToken {
                    ttl_secs: Some(ttl),
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&issued)?);
            } else {
                println!("{}", issued.token);
                eprintln!(
                    "anchor-join token {} (single use), valid for {ttl} s; only its hash is stored",
                    issued.token_id
                );
            }
            Ok(())
        }
    }
}

fn print_status(status: &x0t_node::control::ClusterStatus) {
    println!(
        "node {} ({}), leader {}, term {}, last log {}, applied {}",
        status.id,
        status.state,
        status
            .leader
            .map(|l| l.to_string())
            .unwrap_or_else(|| "none".into()),
        status.term,
        status
            .last_log_index
            .map(|i| i.to_string())
            .unwrap_or_else(|| "-".into()),
        status
            .last_applied_index
            .map(|i| i.to_string())
            .unwrap_or_else(|| "-".into()),
    );
    for (role, members) in [("voter", &status.voters), ("learner", &status.learners)] {
        for (id, node) in members {
            let mark = if Some(*id) == status.leader {
                " (leader)"
            } else {
                ""
            };
            println!(
                "  {role:<8} {id:<20} {}  {}{mark}",
                node.api_url, node.peer_id
            );
        }
    }
}

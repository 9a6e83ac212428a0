//! `x0t nodes …`: list, show, approve, reject, revoke nodes; re-issue a node's token.

use clap::Subcommand;
use x0t_client::AdminClient;
use x0t_node::api::NodeView;
use x0t_proto::pb;

use super::tokens::token_detail;
use super::{ClientArgs, MeshArg, parse_ttl, print_json};

/// `x0t nodes`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    which: NodesCommand,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    mesh: MeshArg,
}

/// Runs `x0t nodes …`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    nodes(args.client.admin().await?, &args.mesh.mesh, args.which).await
}

/// `x0t nodes …`.
#[derive(Debug, Subcommand)]
pub(crate) enum NodesCommand {
    /// List nodes (all states unless --state).
    List {
        /// pending, approved, rejected or revoked.
        #[arg(long)]
        state: Option<String>,
        /// Only nodes with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only nodes of this class.
        #[arg(long)]
        device_class: Option<String>,
        /// Free text: part of a hostname, node id or overlay address.
        #[arg(long)]
        q: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one node.
    Show {
        /// Node id (full or the 16-character short form).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending node: an anchor signs its certificate.
    Approve {
        /// Node id.
        id: String,
        /// Tags to grant, comma-separated [default: those it asked for].
        #[arg(long, value_delimiter = ',')]
        tags: Option<Vec<String>>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reject a pending node.
    Reject {
        /// Node id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a node; its certificate is listed as revoked.
    Revoke {
        /// Node id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a single-use token that re-admits an approved node under a new key.
    ReissueToken {
        /// Node id.
        id: String,
        /// Validity (s, m, h or d), 1h to 30d.
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn node_table(nodes: &[NodeView]) {
    println!(
        "{:<16}  {:<20}  {:<16}  {:<8}  {:<15}  tags",
        "id", "hostname", "state", "class", "overlay ip"
    );
    for n in nodes {
        println!(
            "{:<16}  {:<20}  {:<16}  {:<8}  {:<15}  {}",
            n.short_id,
            n.hostname,
            n.state.name(),
            n.device_class.name(),
            n.overlay_ip.as_deref().unwrap_or("-"),
            if n.tags.is_empty() {
                format!("(asks {})", n.requested_tags.join(","))
            } else {
                n.tags.join(",")
            }
        );
    }
    println!("{} node(s)", nodes.len());
}

fn node_detail(n: &NodeView) {
    println!("node:        {}", n.node_id);
    println!("hostname:    {}", n.hostname);
    println!("state:       {}", n.state.name());
    if let Some(reason) = n.state_reason.as_deref().filter(|r| !r.is_empty()) {
        println!("reason:      {reason}");
    }
    println!("class:       {}", n.device_class.name());
    println!("overlay ip:  {}", n.overlay_ip.as_deref().unwrap_or("-"));
    println!("tags:        {}", n.tags.join(","));
    println!("asked tags:  {}", n.requested_tags.join(","));
    println!("peer id:     {}", n.peer_id);
    if let Some(until) = n.certificate_not_after_ms {
        println!("cert until:  {}", x0t_types::Timestamp(until));
    }
}

/// `x0t nodes …`.
pub(crate) async fn nodes(
    client: AdminClient,
    mesh: &str,
    which: NodesCommand,
) -> anyhow::Result<()> {
    match which {
        NodesCommand::List {
            state,
            tag,
            device_class,
            q,
            json,
        } => {
            let nodes = client
                .list_nodes(pb::ListNodesRequest {
                    mesh: mesh.to_owned(),
                    state: state.unwrap_or_default(),
                    tag: tag.unwrap_or_default(),
                    device_class: device_class.unwrap_or_default(),
                    q: q.unwrap_or_default(),
                    offset: 0,
                    limit: 0,
                })
                .await?;
            if json {
                print_json(&nodes)
            } else {
                node_table(&nodes);
                Ok(())
            }
        }
        NodesCommand::Show { id, json } => {
            let node = client.node(mesh, &id).await?;
            if json {
                print_json(&node)
            } else {
                node_detail(&node);
                Ok(())
            }
        }
        NodesCommand::Approve { id, tags, json } => {
            let node = client.approve(mesh, &id, tags).await?;
            if json {
                print_json(&node)
            } else {
                println!(
                    "approved {} ({}): overlay ip {}",
                    node.short_id,
                    node.hostname,
                    node.overlay_ip.as_deref().unwrap_or("-")
                );
                Ok(())
            }
        }
        NodesCommand::Reject { id, reason, json } => {
            reject_or_revoke(client, mesh, false, &id, reason, json).await
        }
        NodesCommand::Revoke { id, reason, json } => {
            reject_or_revoke(client, mesh, true, &id, reason, json).await
        }
        NodesCommand::ReissueToken { id, ttl, json } => {
            let token = client.reissue_token(mesh, &id, ttl).await?;
            if json {
                print_json(&token)
            } else {
                token_detail(&token);
                Ok(())
            }
        }
    }
}

/// `x0t nodes reject|revoke`.
async fn reject_or_revoke(
    client: AdminClient,
    mesh: &str,
    revoke: bool,
    id: &str,
    reason: String,
    json: bool,
) -> anyhow::Result<()> {
    let node = client.reject_or_revoke(mesh, id, revoke, reason).await?;
    let action = if revoke { "revoked" } else { "rejected" };
    if json {
        print_json(&node)
    } else {
        println!(
            "{} {} ({}): now {}",
            action,
            node.short_id,
            node.hostname,
            node.state.name()
        );
        Ok(())
    }
}

//! The `x0t` commands of the node lifecycle: `join` and `status` on the agent, and the admin
//! commands `nodes`, `tokens`, `audit` and `keys`. Tables for humans, `--json` for scripts.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use x0t_client::AdminClient;
use x0t_client::ApiClient;
use x0t_node::agent::{self, JoinOptions, JoinProgress};
use x0t_node::api::{CreateApiKey, NodeView, TokenView};
use x0t_node::{audit_file, identity};
use x0t_proto::pb;
use x0t_types::{DeviceClass, KeyRole, MeshId, Tag};

use crate::parse_ttl;

/// `x0t join`.
#[derive(Debug, clap::Args)]
pub(crate) struct JoinArgs {
    /// An anchor: its API URL (http://10.0.0.1:7410) or its peer address
    /// (/ip4/10.0.0.1/udp/7411/quic-v1/p2p/<peer id>; enrollment over libp2p).
    #[arg(long, env = "X0T_ANCHOR", value_name = "URL|MULTIADDR")]
    anchor: String,
    /// The mesh to join.
    #[arg(long, env = "X0T_MESH", default_value = "default")]
    mesh: String,
    /// A join token from `x0t tokens create` (pre-approved tokens approve at once).
    #[arg(long, env = "X0T_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Tags to ask for, comma-separated (an admin decides; a token grants its own).
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// What kind of device this is: server, robot, gateway or sensor.
    #[arg(long, default_value = "server")]
    device_class: String,
    /// Hostname to register [default: this machine's].
    #[arg(long)]
    hostname: Option<String>,
    /// How long to wait for approval (s, m, h or d).
    #[arg(long, default_value = "10m", value_parser = parse_ttl)]
    timeout: u64,
    /// Data directory [default: $X0T_DATA_DIR, else /var/lib/x0t as root, else ~/.local/share/x0t]
    #[arg(long, env = identity::DATA_DIR_ENV)]
    dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `x0t status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Data directory.
    #[arg(long, env = identity::DATA_DIR_ENV)]
    dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
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

/// `x0t audit …`.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Export the mesh's audit chain, with hashes and anchor keys, to stdout or --output.
    Export {
        /// csv or json.
        #[arg(long, default_value = "json")]
        format: String,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Verify an exported file offline (--file), or ask the node to verify its chain.
    Verify {
        /// An export (csv or json) to verify offline.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
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

/// `x0t acl …`.
#[derive(Debug, Subcommand)]
pub(crate) enum AclCommand {
    /// Print the mesh's policy document (version 0: none set, everything denied).
    Get {
        /// An older version (one of the last 32; see `acl history`).
        #[arg(value_name = "VERSION")]
        at_version: Option<u64>,
        /// Print the whole view as JSON (version, digest, PQ profiles…).
        #[arg(long)]
        json: bool,
    },
    /// The kept versions of the policy, newest first: who set each, when, its digest.
    History {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make an older version current again (as a new version, audited like any update;
    /// refused if the policy changed meanwhile or the old document's tests no longer pass).
    Rollback {
        /// The version to restore.
        #[arg(value_name = "VERSION")]
        to_version: u64,
    },
    /// Replace the policy with FILE (TOML; `-` reads standard input). Refused, with the line
    /// and column or the failing test, if it is invalid or its tests fail.
    Set {
        /// The policy document.
        file: PathBuf,
        /// Only replace version N (compare-and-set; 0: only if none is set).
        #[arg(long)]
        expected_version: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check policy files offline (syntax, limits, their tests), e.g. in a CI pipeline:
    /// exit status 1, with file, line and column, at the first refused one. Needs no node.
    Check {
        /// The documents.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Whether SRC may open a flow to DST on PORT, and which rule decides. SRC and DST are
    /// node ids, short ids, hostnames, or attributes ("tag:robot class:robot").
    Explain {
        /// The initiating node.
        src: String,
        /// The receiving node.
        dst: String,
        /// The destination port (0 with --proto icmp).
        port: u16,
        /// tcp, udp or icmp.
        #[arg(long, default_value = "tcp")]
        proto: String,
        /// Explain under this draft document instead of the mesh's policy (nothing is saved;
        /// node names are still looked up on the anchors).
        #[arg(long, value_name = "FILE")]
        draft: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `x0t acl …`.
pub(crate) async fn acl(client: AdminClient, mesh: &str, which: AclCommand) -> anyhow::Result<()> {
    match which {
        AclCommand::History { json } => {
            let history = client.acl_history(mesh).await?;
            if json {
                return print_json(&history);
            }
            if history.is_empty() {
                eprintln!("mesh {mesh} has no policy yet: every flow is denied");
            }
            println!(
                "{:>7}  {:<24}  {:<24}  {:>5}  {:>5}  digest",
                "version", "set at", "by", "rules", "tests"
            );
            for v in history {
                println!(
                    "{:>7}  {:<24}  {:<24}  {:>5}  {:>5}  {}",
                    v.version,
                    v.updated_at,
                    v.updated_by,
                    v.rules,
                    v.tests,
                    v.digest.get(..16).unwrap_or(&v.digest)
                );
            }
            Ok(())
        }
        AclCommand::Rollback {
            to_version: version,
        } => {
            let current = client.acl(mesh, None).await?.version;
            let old = client.acl(mesh, Some(version)).await?;
            let view = client
                .set_acl(
                    mesh,
                    x0t_node::api::SetAcl {
                        document: old.document,
                        expected_version: Some(current),
                    },
                )
                .await?;
            println!(
                "policy of mesh {mesh} is now version {} (the document of version {version})",
                view.version
            );
            Ok(())
        }
        AclCommand::Get { at_version, json } => {
            let view = client.acl(mesh, at_version).await?;
            if json {
                return print_json(&view);
            }
            if view.version == 0 {
                eprintln!("mesh {mesh} has no policy yet: every flow is denied");
            } else {
                eprintln!(
                    "mesh {mesh}: policy version {} ({} rules, {} tests), set {} by {}",
                    view.version,
                    view.rules,
                    view.tests,
                    view.updated_at.as_deref().unwrap_or("?"),
                    view.updated_by.as_deref().unwrap_or("?")
                );
            }
            print!("{}", view.document);
            Ok(())
        }
        AclCommand::Set {
            file,
            expected_version,
            json,
        } => {
            let document = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            // Check locally first: the same engine the anchors run, with the file name in
            // the message.
            if let Err(error) = x0t_policy::Policy::parse(&document) {
                bail!("{}: {error}", file.display());
            }
            let view = client
                .set_acl(
                    mesh,
                    x0t_node::api::SetAcl {
                        document,
                        expected_version,
                    },
                )
                .await?;
            if json {
                return print_json(&view);
            }
            println!(
                "policy of mesh {mesh} is now version {} ({} rules, {} tests passed)",
                view.version, view.rules, view.tests
            );
            Ok(())
        }
        AclCommand::Check { files } => acl_check(&files),
        AclCommand::Explain {
            src,
            dst,
            port,
            proto,
            draft,
            json,
        } => {
            let document = draft
                .map(|path| {
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))
                })
                .transpose()?;
            let decision = client
                .explain_acl(
                    mesh,
                    x0t_node::api::ExplainAcl {
                        src,
                        dst,
                        port,
                        proto: Some(proto),
                        document,
                    },
                )
                .await?;
            if json {
                print_json(&decision)
            } else {
                print!("{}", x0t_policy::explain_text(&decision));
                Ok(())
            }
        }
    }
}

/// `x0t acl check FILE…`: the same checks the anchors run, offline.
pub(crate) fn acl_check(files: &[PathBuf]) -> anyhow::Result<()> {
    for file in files {
        let document =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        match x0t_policy::Policy::parse(&document) {
            Ok(policy) => println!(
                "{}: ok ({} rules, {} tests passed)",
                file.display(),
                policy.document().rules.len(),
                policy.document().tests.len()
            ),
            Err(error) => bail!("{}: {error}", file.display()),
        }
    }
    Ok(())
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
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

fn token_detail(t: &TokenView) {
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

/// `x0t join`: register and wait, with a progress line on stderr.
pub(crate) async fn join(args: JoinArgs) -> anyhow::Result<()> {
    let data_dir = args.dir.clone().unwrap_or_else(identity::default_data_dir);
    let tags = args
        .tags
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| Tag::new(t.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    let options = JoinOptions {
        data_dir,
        anchor: args.anchor.clone(),
        mesh: MeshId::new(args.mesh.as_str())?,
        token: args.token.clone(),
        tags,
        device_class: args.device_class.parse::<DeviceClass>()?,
        hostname: args.hostname.clone(),
        timeout: Duration::from_secs(args.timeout),
        poll_every: Duration::from_millis(500),
    };
    let tty = std::io::stderr().is_terminal();
    let spinner = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let mut ticks = 0usize;
    let mut last_line = 0u64;
    let result = agent::join(&options, |event| match event {
        JoinProgress::Registered { node_id, state } => {
            eprintln!(
                "registered with mesh {} as {} ({})",
                options.mesh,
                node_id.short(),
                state.name()
            );
        }
        JoinProgress::Waiting { elapsed } => {
            ticks += 1;
            if tty {
                eprint!(
                    "\r{} waiting for approval… {:>4} s (an admin runs `x0t nodes approve <id>`)",
                    spinner[ticks % spinner.len()],
                    elapsed.as_secs()
                );
                let _ = std::io::stderr().flush();
            } else if elapsed.as_secs() >= last_line + 10 {
                last_line = elapsed.as_secs();
                eprintln!("waiting for approval… {} s", elapsed.as_secs());
            }
        }
    })
    .await;
    if tty && ticks > 0 {
        eprintln!();
    }
    let (state, cert) = result?;
    if args.json {
        return print_json(&state);
    }
    if let Some(cert) = cert {
        println!(
            "approved: node {} in mesh {}",
            cert.node_id.short(),
            cert.mesh
        );
        println!("  overlay ip:  {}", cert.overlay_ip);
        let tags: Vec<&str> = cert.tags.iter().map(|t| t.as_str()).collect();
        println!("  tags:        {}", tags.join(","));
        println!(
            "  certificate: valid until {} (signed by anchor {})",
            cert.not_after,
            cert.issuer.short()
        );
    }
    Ok(())
}

/// `x0t status`: what this agent holds and what the anchors say now.
pub(crate) async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(identity::default_data_dir);
    let Some(state) = agent::load_state(&dir)? else {
        bail!(
            "this node has not joined a mesh (no {} in {}); run `x0t join --anchor URL`",
            agent::AGENT_FILE,
            dir.display()
        );
    };
    let certificate = agent::load_certificate(&dir)?;
    let mut reached = 0;
    let mut ledger_state = None;
    for url in &state.anchors {
        if let Ok(client) = ApiClient::new(url, None)
            && let Ok(status) = client.node_status(&state.mesh, &state.node_id).await
        {
            reached += 1;
            ledger_state.get_or_insert(status);
        }
    }
    let now = x0t_types::Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    );
    let cert = certificate.as_ref().map(|c| c.payload().clone());
    let data_plane = crate::member_cli::running_status(&dir).await;
    if args.json {
        return print_json(&serde_json::json!({
            "data_plane": data_plane,
            "mesh": state.mesh,
            "node_id": state.node_id,
            "state": ledger_state.as_ref().map_or(state.state, |s| s.state),
            "state_reason": ledger_state.as_ref().and_then(|s| s.state_reason.clone()),
            "overlay_ip": cert.as_ref().map(|c| c.overlay_ip.to_string()),
            "certificate_not_before_ms": cert.as_ref().map(|c| c.not_before.as_millis()),
            "certificate_not_after_ms": cert.as_ref().map(|c| c.not_after.as_millis()),
            "certificate_valid_now": cert.as_ref().is_some_and(|c| now >= c.not_before && now < c.not_after),
            "anchors_reached": reached,
            "anchors_known": state.anchors.len(),
        }));
    }
    println!("node:        {}", state.node_id);
    println!("mesh:        {}", state.mesh);
    match &ledger_state {
        Some(s) => println!(
            "state:       {}{}",
            s.state.name(),
            s.state_reason
                .as_deref()
                .filter(|r| !r.is_empty())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        None => println!(
            "state:       {} (last seen; no anchor answered)",
            state.state.name()
        ),
    }
    match &cert {
        Some(c) => {
            let validity = if now < c.not_before {
                "not yet valid"
            } else if now >= c.not_after {
                "EXPIRED"
            } else {
                "valid"
            };
            println!("overlay ip:  {}", c.overlay_ip);
            println!(
                "certificate: {validity}, {} to {} (issuer {})",
                c.not_before,
                c.not_after,
                c.issuer.short()
            );
        }
        None => println!("certificate: none yet"),
    }
    println!("anchors:     {reached} of {} reached", state.anchors.len());
    for url in &state.anchors {
        println!("  {url}");
    }
    match &data_plane {
        Some(status) => crate::member_cli::print_peers(status),
        None => println!("data plane:  not running (start it with `x0t agent run`)"),
    }
    Ok(())
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

/// `x0t audit …`.
pub(crate) async fn audit(
    client: impl Future<Output = anyhow::Result<AdminClient>>,
    mesh: &str,
    which: AuditCommand,
) -> anyhow::Result<()> {
    match which {
        AuditCommand::Export { format, output } => {
            if format != "csv" && format != "json" {
                bail!("--format must be csv or json, not {format:?}");
            }
            let bytes = client.await?.export_audit(mesh, &format).await?;
            let text = String::from_utf8(bytes).context("the export is not UTF-8")?;
            match output {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {} ({} bytes)", path.display(), text.len());
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        AuditCommand::Verify {
            file: Some(path),
            json,
        } => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let parsed =
                audit_file::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            match audit_file::verify(&parsed) {
                Ok(verified) => {
                    if json {
                        print_json(
                            &serde_json::json!({"ok": true, "entries": verified.entries, "anchors": verified.anchors}),
                        )
                    } else {
                        println!(
                            "ok: {} entries of mesh {} verify (hash chain, signatures, head)",
                            verified.entries, parsed.mesh
                        );
                        println!("signed by anchors: {}", verified.anchors.join(", "));
                        Ok(())
                    }
                }
                Err(bad) => {
                    if json {
                        print_json(&serde_json::json!({"ok": false, "first_bad": bad}))?;
                    }
                    bail!("the chain breaks at entry {}: {}", bad.index, bad.reason)
                }
            }
        }
        AuditCommand::Verify { file: None, json } => {
            let verdict = client.await?.verify_audit(mesh).await?;
            if json {
                print_json(&verdict)?;
            } else if verdict.ok {
                println!(
                    "ok: {} entries verify; head {}",
                    verdict.entries, verdict.head_hash
                );
            }
            match verdict.first_bad {
                Some(bad) => bail!("the chain breaks at entry {}: {}", bad.index, bad.reason),
                None => Ok(()),
            }
        }
    }
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

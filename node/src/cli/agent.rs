//! `x0t join` and `x0t status`: a device enrolling in a mesh (register, wait for approval,
//! keep the certificate) and what it holds now.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use x0t_client::ApiClient;
use x0t_node::agent::{self, JoinOptions, JoinProgress};
use x0t_node::identity;
use x0t_types::{DeviceClass, MeshId, Tag};

use super::{parse_ttl, print_json};

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
    let data_plane = super::member::running_status(&dir).await;
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
        Some(status) => super::member::print_peers(status),
        None => println!("data plane:  not running (start it with `x0t agent run`)"),
    }
    Ok(())
}

//! `x0t`: the one binary every node of an x0t mesh runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use x0t_client::ApiClient;
use x0t_crypto::{SigAlgorithm, fingerprint};
use x0t_node::run::{ADMIN_KEY_FILE, JoinConfig, NodeInfo};
use x0t_node::{bench, identity, testnet};

mod lifecycle_cli;
mod member_cli;

/// x0t mesh: a zero-trust, post-quantum, self-healing overlay network.
#[derive(Debug, Parser)]
#[command(name = "x0t", version, propagate_version = true)]
struct Cli {
    /// Log format on stderr; the level comes from RUST_LOG (default: info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Algorithm {
    /// ML-DSA-65 (NIST level 3): the default identity.
    #[value(name = "ml-dsa-65")]
    MlDsa65,
    /// ML-DSA-44: for constrained devices (sensor class).
    #[value(name = "ml-dsa-44")]
    MlDsa44,
}

impl From<Algorithm> for SigAlgorithm {
    fn from(value: Algorithm) -> Self {
        match value {
            Algorithm::MlDsa65 => SigAlgorithm::MlDsa65,
            Algorithm::MlDsa44 => SigAlgorithm::MlDsa44,
        }
    }
}

#[derive(Debug, clap::Args)]
struct DirArg {
    /// Data directory [default: $X0T_DATA_DIR, else /var/lib/x0t as root, else ~/.local/share/x0t]
    #[arg(long, env = identity::DATA_DIR_ENV)]
    dir: Option<PathBuf>,
}

impl DirArg {
    fn resolve(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(identity::default_data_dir)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create this node's post-quantum identity key (refuses to replace an existing one).
    Keygen {
        #[command(flatten)]
        dir: DirArg,
        /// Replace an existing key. The node gets a new identity and must be approved again.
        #[arg(long)]
        force: bool,
        /// Signature algorithm of the identity.
        #[arg(long, value_enum, default_value_t = Algorithm::MlDsa65)]
        algorithm: Algorithm,
    },
    /// Print this node's id and public key fingerprint.
    Id {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print version and build information.
    Version,
    /// Start a node: bootstraps a one-anchor cluster on first start, or joins one (--join).
    Up {
        #[command(flatten)]
        dir: DirArg,
        /// API (HTTP) listen address.
        #[arg(long, default_value = "127.0.0.1:7410")]
        api_listen: std::net::SocketAddr,
        /// Peer-to-peer port (TCP and QUIC/UDP); 0 picks a free one.
        #[arg(long, default_value_t = 7411)]
        p2p_port: u16,
        /// Peer-to-peer listen IP.
        #[arg(long, default_value = "127.0.0.1")]
        p2p_ip: std::net::IpAddr,
        /// Join an existing cluster as an anchor (learner first, then voter), through one of
        /// its anchors: its peer address `/ip4/…/udp/…/quic-v1/p2p/<peer id>` with an
        /// anchor-join token (--token), or its API URL with an admin key (--key).
        #[arg(long, value_name = "MULTIADDR|URL")]
        join: Option<String>,
        /// Anchor-join token (`x0t cluster join-token` on the cluster), for a multiaddr --join.
        #[arg(long, env = "X0T_JOIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Admin key of the cluster, for a URL --join.
        #[arg(long, env = "X0T_KEY", hide_env_values = true)]
        key: Option<String>,
        /// Build a Raft snapshot every N log entries.
        #[arg(long, default_value_t = 10_000, hide = true)]
        snapshot_every: u64,
        /// Log entries kept after a snapshot.
        #[arg(long, default_value_t = 1_000, hide = true)]
        keep_after_snapshot: u64,
    },
    /// Register this device with a mesh and wait for approval (stores the certificate).
    Join(lifecycle_cli::JoinArgs),
    /// This agent's state, certificate validity, the anchors it reaches, and (when `x0t
    /// agent run` runs) its peers with path, round trip, bytes and session age.
    Status(lifecycle_cli::StatusArgs),
    /// Run an approved node's data plane (`x0t agent run`).
    Agent {
        #[command(subcommand)]
        which: member_cli::AgentCommand,
    },
    /// Ping a mesh peer through its end-to-end session.
    Ping(member_cli::PingArgs),
    /// The data plane's events (links down and back, route changes, peers), oldest first;
    /// `--follow` keeps printing.
    Events(member_cli::EventsArgs),
    /// The self-healing figures the data plane measured of itself: failover, detection,
    /// time to repair (p50/p99/max), onboarding.
    Slo(member_cli::ReportArgs),
    /// The mesh as this node's link states describe it: nodes, links and their health.
    Topology(member_cli::ReportArgs),
    /// Userspace mode: offer a local TCP port to the mesh under a name.
    Expose(member_cli::ExposeArgs),
    /// Userspace mode: listen locally and forward to `<node>/<service>` through the mesh.
    Connect(member_cli::ConnectArgs),
    /// Admin: list, show, approve, reject, revoke nodes; re-issue a node's token.
    Nodes {
        #[command(subcommand)]
        which: lifecycle_cli::NodesCommand,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        mesh: MeshArg,
    },
    /// Admin: issue and rotate join tokens.
    Tokens {
        #[command(subcommand)]
        which: lifecycle_cli::TokensCommand,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        mesh: MeshArg,
    },
    /// Export and verify the mesh's audit chain.
    Audit {
        #[command(subcommand)]
        which: lifecycle_cli::AuditCommand,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        mesh: MeshArg,
    },
    /// ACL policy: get, set (validated and tested), explain a flow.
    Acl {
        #[command(subcommand)]
        which: lifecycle_cli::AclCommand,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        mesh: MeshArg,
    },
    /// Admin: API keys.
    Keys {
        #[command(subcommand)]
        which: lifecycle_cli::KeysCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Control-plane cluster commands.
    Cluster {
        #[command(subcommand)]
        which: ClusterCommand,
    },
    /// Mesh commands.
    Mesh {
        #[command(subcommand)]
        which: MeshCommand,
    },
    /// A local testnet of anchor processes on loopback.
    Testnet {
        #[command(subcommand)]
        which: TestnetCommand,
    },
    /// Measure performance.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

/// How client commands find a node and authenticate.
#[derive(Debug, clap::Args)]
struct ClientArgs {
    /// Node API URL [default: $X0T_API, else the node in the data dir]
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
struct MeshArg {
    /// The mesh.
    #[arg(long, env = "X0T_MESH", default_value = "default", global = true)]
    mesh: String,
}

impl ClientArgs {
    fn client(&self) -> anyhow::Result<ApiClient> {
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
    async fn admin(&self) -> anyhow::Result<x0t_client::AdminClient> {
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

#[derive(Debug, Subcommand)]
enum ClusterCommand {
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

/// Parses `90m`, `24h`, `7d`, `3600s` into seconds.
fn parse_ttl(text: &str) -> Result<u64, String> {
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

#[derive(Debug, Subcommand)]
enum MeshCommand {
    /// Create a mesh.
    Create {
        /// Its name.
        name: String,
        /// Its description.
        #[arg(long, default_value = "")]
        description: String,
        /// Its plan: starter, pro or enterprise.
        #[arg(long, default_value = "starter")]
        plan: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a mesh (linearizable read unless --stale).
    Get {
        /// Its name.
        name: String,
        /// Allow a possibly stale local read.
        #[arg(long)]
        stale: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Replace a mesh's settings, optionally only at a given version.
    Set {
        /// Its name.
        name: String,
        /// New description.
        #[arg(long)]
        description: String,
        /// Compare-and-set: apply only if the mesh is at this version.
        #[arg(long)]
        expected_version: Option<u64>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TestnetCommand {
    /// Start N anchor processes and wait until they form one cluster.
    Up {
        /// Number of anchors (1 to 7).
        #[arg(long, default_value_t = 3)]
        anchors: usize,
        /// Testnet directory (data dirs and logs).
        #[arg(long, default_value = ".testnet")]
        dir: PathBuf,
        /// First port; node K uses base + 10(K-1) for its API and the next for peers.
        #[arg(long, default_value_t = 7400)]
        base_port: u16,
    },
    /// Stop the testnet's processes.
    Down {
        /// Testnet directory.
        #[arg(long, default_value = ".testnet")]
        dir: PathBuf,
    },
    /// Print `export` lines pointing client commands at the testnet.
    Env {
        /// Testnet directory.
        #[arg(long, default_value = ".testnet")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Microseconds per ML-DSA / ML-KEM operation and per handshake, against an X25519 anchor.
    Crypto {
        /// Timed iterations per operation.
        #[arg(long, default_value_t = 1_000)]
        iterations: u32,
        /// Untimed warm-up iterations per operation.
        #[arg(long, default_value_t = 50)]
        warmup: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        let _ = tx.send(true);
    });
    rx
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

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Keygen {
            dir,
            force,
            algorithm,
        } => {
            let dir = dir.resolve();
            let key = identity::generate_identity(&dir, algorithm.into(), force)
                .context("cannot create the identity key")?;
            println!(
                "created {} identity key {}",
                key.algorithm(),
                identity::identity_key_path(&dir).display()
            );
            println!("node id: {}", key.node_id());
            Ok(())
        }
        Command::Id { dir, json } => {
            let dir = dir.resolve();
            let key = identity::load_identity(&dir).context("cannot read the identity key")?;
            let public = key.verifying_key();
            let info = serde_json::json!({
                "node_id": key.node_id().to_string(),
                "node_id_short": key.node_id().short(),
                "algorithm": key.algorithm().name(),
                "public_key_bytes": public.as_bytes().len(),
                "public_key_fingerprint": fingerprint(public.as_bytes()),
                "key_file": identity::identity_key_path(&dir),
            });
            if json {
                println!("{info:#}");
            } else {
                println!("node id:      {}", key.node_id());
                println!("short id:     {}", key.node_id().short());
                println!(
                    "identity key: {} ({} bytes)",
                    key.algorithm(),
                    public.as_bytes().len()
                );
                println!("fingerprint:  {}", fingerprint(public.as_bytes()));
                println!(
                    "key file:     {}",
                    identity::identity_key_path(&dir).display()
                );
            }
            Ok(())
        }
        Command::Version => {
            println!("x0t {}", env!("CARGO_PKG_VERSION"));
            println!("identity:  ML-DSA-65 (ML-DSA-44 for constrained devices), via liboqs");
            println!("sessions:  X25519 + ML-KEM-768 (ML-KEM-512 constrained), ChaCha20-Poly1305");
            println!("hashing:   blake3");
            Ok(())
        }
        Command::Up {
            dir,
            api_listen,
            p2p_port,
            p2p_ip,
            join,
            token,
            key,
            snapshot_every,
            keep_after_snapshot,
        } => {
            let data_dir = dir.resolve();
            let ip = match p2p_ip {
                std::net::IpAddr::V4(ip) => format!("/ip4/{ip}"),
                std::net::IpAddr::V6(ip) => format!("/ip6/{ip}"),
            };
            let join = match join {
                Some(api_url) if api_url.starts_with("http://") || api_url.starts_with("https://") => {
                    Some(JoinConfig::AdminKey {
                        api_url,
                        admin_key: key.context(
                            "--join with an API URL needs the cluster's admin key (--key or X0T_KEY)",
                        )?,
                    })
                }
                Some(peer) => Some(JoinConfig::Token {
                    peer: peer.parse().with_context(|| {
                        format!("--join {peer:?} is neither an http(s) URL nor a multiaddr")
                    })?,
                    token: token.context(
                        "--join with a peer address needs an anchor-join token \
                         (--token or X0T_JOIN_TOKEN; `x0t cluster join-token` issues one)",
                    )?,
                }),
                None => None,
            };
            let config = x0t_node::NodeConfig {
                data_dir: data_dir.clone(),
                p2p_listen: vec![
                    format!("{ip}/tcp/{p2p_port}").parse()?,
                    format!("{ip}/udp/{p2p_port}/quic-v1").parse()?,
                ],
                api_listen,
                join,
                raft: x0t_node::control::RaftSettings {
                    snapshot_every,
                    keep_after_snapshot,
                    ..Default::default()
                },
            };
            let shutdown = shutdown_signal().await;
            let node = tokio::spawn(x0t_node::run(config, shutdown));
            // Announce once the node is serving.
            while !node.is_finished() {
                if let Ok(info) = NodeInfo::load(&data_dir)
                    && info.pid == std::process::id()
                {
                    println!("x0t node {} is up", info.raft_id);
                    println!("  API and UI: {}", info.api_url);
                    println!("  peers:      {}", info.p2p_addrs.join(" "));
                    if let Some(quic) = info.p2p_addrs.iter().find(|a| a.contains("quic")) {
                        println!(
                            "  join with:  x0t up --join {quic}/p2p/{} --token <x0t cluster join-token>",
                            info.peer_id
                        );
                        println!(
                            "  agents:     x0t join --anchor {quic}/p2p/{} [--token <x0t tokens create>]",
                            info.peer_id
                        );
                    }
                    if data_dir.join(ADMIN_KEY_FILE).exists() {
                        println!("  admin key:  {}", data_dir.join(ADMIN_KEY_FILE).display());
                    }
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            node.await.context("node task failed")??;
            Ok(())
        }
        Command::Cluster {
            which: ClusterCommand::Status { client, json },
        } => {
            let status = client.client()?.cluster().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(())
        }
        Command::Cluster {
            which: ClusterCommand::JoinToken { client, ttl, json },
        } => {
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
        Command::Join(args) => lifecycle_cli::join(args).await,
        Command::Status(args) => lifecycle_cli::status(args).await,
        Command::Agent { which } => member_cli::agent(which).await,
        Command::Ping(args) => member_cli::ping(args).await,
        Command::Events(args) => member_cli::events(args).await,
        Command::Slo(args) => member_cli::slo(args).await,
        Command::Topology(args) => member_cli::topology(args).await,
        Command::Expose(args) => member_cli::expose(args).await,
        Command::Connect(args) => member_cli::connect(args).await,
        Command::Nodes {
            which,
            client,
            mesh,
        } => lifecycle_cli::nodes(client.admin().await?, &mesh.mesh, which).await,
        Command::Tokens {
            which,
            client,
            mesh,
        } => lifecycle_cli::tokens(client.admin().await?, &mesh.mesh, which).await,
        Command::Audit {
            which,
            client,
            mesh,
        } => lifecycle_cli::audit(client.admin(), &mesh.mesh, which).await,
        // Offline: needs no node to talk to.
        Command::Acl {
            which: lifecycle_cli::AclCommand::Check { files },
            ..
        } => lifecycle_cli::acl_check(&files),
        Command::Acl {
            which,
            client,
            mesh,
        } => lifecycle_cli::acl(client.admin().await?, &mesh.mesh, which).await,
        Command::Keys { which, client } => lifecycle_cli::keys(client.client()?, which).await,
        Command::Mesh { which } => {
            let view = match which {
                MeshCommand::Create {
                    name,
                    description,
                    plan,
                    client,
                } => {
                    client
                        .client()?
                        .create_mesh(&x0t_node::api::CreateMesh {
                            name,
                            description,
                            plan: Some(plan.parse()?),
                        })
                        .await?
                }
                MeshCommand::Get {
                    name,
                    stale,
                    client,
                } => client.client()?.mesh(&name, stale).await?,
                MeshCommand::Set {
                    name,
                    description,
                    expected_version,
                    client,
                } => {
                    client
                        .client()?
                        .update_settings(
                            &name,
                            &x0t_node::api::UpdateSettings {
                                description,
                                expected_version,
                            },
                        )
                        .await?
                }
            };
            println!("{}", serde_json::to_string_pretty(&view)?);
            Ok(())
        }
        Command::Testnet { which } => match which {
            TestnetCommand::Up {
                anchors,
                dir,
                base_port,
            } => {
                let exe = std::env::current_exe()?;
                std::fs::create_dir_all(&dir)?;
                let dir = dir.canonicalize()?;
                eprintln!("starting {anchors} anchors in {} …", dir.display());
                let infos = testnet::up(&exe, &dir, anchors, base_port, &[]).await?;
                println!("{:<6} {:<20} {:<24} peer id", "node", "raft id", "api");
                for (i, info) in infos.iter().enumerate() {
                    println!(
                        "node{:<2} {:<20} {:<24} {}",
                        i + 1,
                        info.raft_id,
                        info.api_url,
                        info.peer_id
                    );
                }
                println!("\nlogs: {}/node*/x0t.log", dir.display());
                println!("use:  eval \"$(x0t testnet env --dir {})\"", dir.display());
                Ok(())
            }
            TestnetCommand::Down { dir } => {
                let stopped = testnet::down(&dir).await?;
                println!("stopped {stopped} node(s)");
                Ok(())
            }
            TestnetCommand::Env { dir } => {
                let first = testnet::node_dir(&dir, 1);
                let info = NodeInfo::load(&first)?;
                let key = std::fs::read_to_string(first.join(ADMIN_KEY_FILE))
                    .context("reading node1's admin key")?;
                println!("export X0T_API={}", info.api_url);
                println!("export X0T_KEY={}", key.trim());
                Ok(())
            }
        },
        Command::Bench {
            which:
                BenchCommand::Crypto {
                    iterations,
                    warmup,
                    json,
                },
        } => {
            if cfg!(debug_assertions) {
                tracing::warn!(
                    "this is a debug build; benchmark figures are only meaningful from --release"
                );
            }
            let rows = bench::crypto(bench::BenchConfig { iterations, warmup })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", bench::render_table(&rows));
            }
            Ok(())
        }
    }
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

    /// clap checks a command's definition only when that command is parsed (in debug
    /// builds); this checks every subcommand at once (an argument named `version` clashed
    /// with the global `--version` once, caught only by an end-to-end test).
    #[test]
    fn every_command_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

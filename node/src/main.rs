//! `x0t`: the one binary every node of an x0t mesh runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use x0t_crypto::{SigAlgorithm, fingerprint};
use x0t_node::run::{ADMIN_KEY_FILE, JoinConfig, NodeInfo};
use x0t_node::{bench, identity, testnet};

mod cli;

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
    Join(cli::agent::JoinArgs),
    /// This agent's state, certificate validity, the anchors it reaches, and (when `x0t
    /// agent run` runs) its peers with path, round trip, bytes and session age.
    Status(cli::agent::StatusArgs),
    /// Run an approved node's data plane (`x0t agent run`).
    Agent {
        #[command(subcommand)]
        which: cli::member::AgentCommand,
    },
    /// Ping a mesh peer through its end-to-end session.
    Ping(cli::member::PingArgs),
    /// The data plane's events (links down and back, route changes, peers), oldest first;
    /// `--follow` keeps printing.
    Events(cli::member::EventsArgs),
    /// The self-healing figures the data plane measured of itself: failover, detection,
    /// time to repair (p50/p99/max), onboarding.
    Slo(cli::member::ReportArgs),
    /// The mesh as this node's link states describe it: nodes, links and their health.
    Topology(cli::member::ReportArgs),
    /// Userspace mode: offer a local TCP port to the mesh under a name.
    Expose(cli::member::ExposeArgs),
    /// Userspace mode: listen locally and forward to `<node>/<service>` through the mesh.
    Connect(cli::member::ConnectArgs),
    /// Admin: list, show, approve, reject, revoke nodes; re-issue a node's token.
    Nodes(cli::nodes::Args),
    /// Admin: issue and rotate join tokens.
    Tokens(cli::tokens::Args),
    /// Export and verify the mesh's audit chain.
    Audit(cli::audit::Args),
    /// ACL policy: get, set (validated and tested), explain a flow.
    Acl(cli::acl::Args),
    /// Admin: API keys.
    Keys(cli::api_keys::Args),
    /// Control-plane cluster commands.
    Cluster {
        #[command(subcommand)]
        which: cli::cluster::ClusterCommand,
    },
    /// Mesh commands.
    Mesh {
        #[command(subcommand)]
        which: cli::meshes::MeshCommand,
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
        Command::Cluster { which } => cli::cluster::run(which).await,
        Command::Join(args) => cli::agent::join(args).await,
        Command::Status(args) => cli::agent::status(args).await,
        Command::Agent { which } => cli::member::agent(which).await,
        Command::Ping(args) => cli::member::ping(args).await,
        Command::Events(args) => cli::member::events(args).await,
        Command::Slo(args) => cli::member::slo(args).await,
        Command::Topology(args) => cli::member::topology(args).await,
        Command::Expose(args) => cli::member::expose(args).await,
        Command::Connect(args) => cli::member::connect(args).await,
        Command::Nodes(args) => cli::nodes::run(args).await,
        Command::Tokens(args) => cli::tokens::run(args).await,
        Command::Audit(args) => cli::audit::run(args).await,
        Command::Acl(args) => cli::acl::run(args).await,
        Command::Keys(args) => cli::api_keys::run(args).await,
        Command::Mesh { which } => cli::meshes::run(which).await,
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
    /// clap checks a command's definition only when that command is parsed (in debug
    /// builds); this checks every subcommand at once (an argument named `version` clashed
    /// with the global `--version` once, caught only by an end-to-end test).
    #[test]
    fn every_command_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

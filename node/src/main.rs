//! `x0t`: the one binary every node of an x0t mesh runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use x0t_crypto::{SigAlgorithm, fingerprint};
use x0t_node::{bench, identity};

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
    /// Measure performance.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
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

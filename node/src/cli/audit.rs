//! `x0t audit …`: export the mesh's audit chain, and verify it (offline from a file, or on
//! the node).

use clap::Subcommand;
use std::path::PathBuf;

use anyhow::{Context, bail};
use x0t_client::AdminClient;
use x0t_node::audit_file;

use super::{ClientArgs, MeshArg, print_json};

/// `x0t audit`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    which: AuditCommand,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    mesh: MeshArg,
}

/// Runs `x0t audit …` (an offline verification connects to no node).
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    audit(args.client.admin(), &args.mesh.mesh, args.which).await
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

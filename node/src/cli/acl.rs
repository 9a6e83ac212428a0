//! `x0t acl …`: the mesh's policy: get, history, rollback, set (validated and tested),
//! check files offline, explain a flow.

use clap::Subcommand;
use std::path::PathBuf;

use anyhow::{Context, bail};
use x0t_client::AdminClient;

use super::{ClientArgs, MeshArg, print_json};

/// `x0t acl`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    which: AclCommand,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    mesh: MeshArg,
}

/// Runs `x0t acl …` (`check` is offline: it needs no node).
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.which {
        AclCommand::Check { files } => acl_check(&files),
        which => acl(args.client.admin().await?, &args.mesh.mesh, which).await,
    }
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

//! `x0t mesh …`: create a mesh, show one, replace its settings.

use clap::Subcommand;

use super::ClientArgs;

/// `x0t mesh …`.
#[derive(Debug, Subcommand)]
pub(crate) enum MeshCommand {
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

/// Runs `x0t mesh …`.
pub(crate) async fn run(which: MeshCommand) -> anyhow::Result<()> {
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

//! The meshes domain: each tenant network's name, settings (compare-and-set by version),
//! plan and join-token rotation epoch.

mod command;
pub use command::{MeshCommand, MeshOutcome, MeshReject};
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use x0t_types::command::MAX_DESCRIPTION_LEN;
use x0t_types::{MeshId, MeshSettings, Plan, Timestamp};

use crate::domain::{Applied, At, Domain};
use crate::{Command, Ledger, Outcome, Reject};

/// A mesh: a tenant's network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mesh {
    /// Its name.
    pub id: MeshId,
    /// Its current settings.
    pub settings: MeshSettings,
    /// Starts at 1 and goes up by one on every settings change (compare-and-set token).
    pub version: u64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its settings last changed.
    pub updated_at: Timestamp,
    /// Log index of its last change.
    pub updated_index: u64,
    /// Its plan (recorded; enforced in a later release).
    pub plan: Plan,
    /// Join-token rotation epoch: tokens of an older epoch are invalid.
    pub token_epoch: u64,
}

/// The meshes' part of the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meshes {
    meshes: BTreeMap<MeshId, Mesh>,
    changed: BTreeSet<Key>,
}

/// A mesh record's key, as stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Key {
    /// A mesh, by name.
    Mesh(MeshId),
}

/// A mesh record, as stored.
#[derive(Serialize, Deserialize)]
pub(crate) enum Value {
    /// A mesh.
    Mesh(Mesh),
}

impl Domain for Meshes {
    const NAME: &'static str = "meshes";
    type Key = Key;
    type Value = Value;

    fn key_of(value: &Value) -> Key {
        match value {
            Value::Mesh(mesh) => Key::Mesh(mesh.id.clone()),
        }
    }

    fn get(&self, key: &Key) -> Option<Value> {
        match key {
            Key::Mesh(id) => self.meshes.get(id).cloned().map(Value::Mesh),
        }
    }

    fn values(&self) -> Vec<Value> {
        self.meshes.values().cloned().map(Value::Mesh).collect()
    }

    fn load(&mut self, value: Value) {
        match value {
            Value::Mesh(mesh) => {
                self.meshes.insert(mesh.id.clone(), mesh);
            }
        }
    }

    fn changes(&self) -> &BTreeSet<Key> {
        &self.changed
    }

    fn changes_mut(&mut self) -> &mut BTreeSet<Key> {
        &mut self.changed
    }
}

impl Meshes {
    /// A mesh by name.
    pub(crate) fn get(&self, id: &MeshId) -> Option<&Mesh> {
        self.meshes.get(id)
    }

    /// The mesh, or the refusal every domain gives for a mesh that does not exist.
    pub(crate) fn require(&self, id: &MeshId) -> Result<&Mesh, Reject> {
        self.meshes
            .get(id)
            .ok_or_else(|| Reject::Meshes(MeshReject::NoSuchMesh { mesh: id.clone() }))
    }

    /// Starts a new join-token epoch in `mesh` (tokens of older epochs stop working);
    /// answers it.
    pub(crate) fn bump_token_epoch(&mut self, id: &MeshId) -> Result<u64, Reject> {
        let mesh = self
            .meshes
            .get_mut(id)
            .ok_or_else(|| Reject::Meshes(MeshReject::NoSuchMesh { mesh: id.clone() }))?;
        mesh.token_epoch += 1;
        self.changed.insert(Key::Mesh(id.clone()));
        Ok(mesh.token_epoch)
    }

    /// `CreateMesh`: refused if it exists.
    pub(crate) fn create(
        &mut self,
        id: &MeshId,
        settings: &MeshSettings,
        plan: Plan,
        at: At,
    ) -> Result<Applied, Reject> {
        validate_settings(settings)?;
        if self.meshes.contains_key(id) {
            return Err(Reject::Meshes(MeshReject::MeshExists { mesh: id.clone() }));
        }
        let mesh = Mesh {
            id: id.clone(),
            settings: settings.clone(),
            version: 1,
            created_at: at.timestamp,
            updated_at: at.timestamp,
            updated_index: at.index,
            plan,
            token_epoch: 0,
        };
        self.meshes.insert(id.clone(), mesh.clone());
        self.changed.insert(Key::Mesh(id.clone()));
        Ok(Applied::new(
            Outcome::Meshes(MeshOutcome::Created { mesh }),
            id.to_string(),
            format!("plan {plan}"),
        ))
    }

    /// `UpdateMeshSettings`: with `expected_version`, only at exactly that version.
    pub(crate) fn update_settings(
        &mut self,
        id: &MeshId,
        expected_version: Option<u64>,
        settings: &MeshSettings,
        at: At,
    ) -> Result<Applied, Reject> {
        validate_settings(settings)?;
        let mesh = self
            .meshes
            .get_mut(id)
            .ok_or_else(|| Reject::Meshes(MeshReject::NoSuchMesh { mesh: id.clone() }))?;
        if let Some(expected) = expected_version
            && expected != mesh.version
        {
            return Err(Reject::Meshes(MeshReject::VersionMismatch {
                mesh: id.clone(),
                expected,
                actual: mesh.version,
            }));
        }
        mesh.settings = settings.clone();
        mesh.version += 1;
        mesh.updated_at = at.timestamp;
        mesh.updated_index = at.index;
        let updated = mesh.clone();
        self.changed.insert(Key::Mesh(id.clone()));
        let details = format!("settings now at version {}", updated.version);
        Ok(Applied::new(
            Outcome::Meshes(MeshOutcome::Updated { mesh: updated }),
            id.to_string(),
            details,
        ))
    }
}

fn validate_settings(settings: &MeshSettings) -> Result<(), Reject> {
    if settings.description.len() > MAX_DESCRIPTION_LEN {
        return Err(Reject::Invalid(format!(
            "description of {} bytes exceeds {MAX_DESCRIPTION_LEN}",
            settings.description.len()
        )));
    }
    Ok(())
}

/// A result as remembered for retries: mesh outcomes without their settings (the retried
/// command carries them; keeps remembered results small).
pub(crate) fn without_settings(result: &Result<Outcome, Reject>) -> Result<Outcome, Reject> {
    let bare = |mesh: &Mesh| Mesh {
        settings: MeshSettings::default(),
        ..mesh.clone()
    };
    match result {
        Ok(Outcome::Meshes(MeshOutcome::Created { mesh })) => {
            Ok(Outcome::Meshes(MeshOutcome::Created { mesh: bare(mesh) }))
        }
        Ok(Outcome::Meshes(MeshOutcome::Updated { mesh })) => {
            Ok(Outcome::Meshes(MeshOutcome::Updated { mesh: bare(mesh) }))
        }
        other => other.clone(),
    }
}

/// A remembered result answered to a retry of `command`: the settings the command set are
/// put back, giving exactly what the first attempt returned.
pub(crate) fn replayed(
    remembered: &Result<Outcome, Reject>,
    command: &Command,
) -> Result<Outcome, Reject> {
    let with = |mesh: &Mesh, settings: &MeshSettings| Mesh {
        settings: settings.clone(),
        ..mesh.clone()
    };
    match (remembered, command) {
        (
            Ok(Outcome::Meshes(MeshOutcome::Created { mesh })),
            Command::Meshes(MeshCommand::Create { settings, .. }),
        ) => Ok(Outcome::Meshes(MeshOutcome::Created {
            mesh: with(mesh, settings),
        })),
        (
            Ok(Outcome::Meshes(MeshOutcome::Updated { mesh })),
            Command::Meshes(MeshCommand::UpdateSettings { settings, .. }),
        ) => Ok(Outcome::Meshes(MeshOutcome::Updated {
            mesh: with(mesh, settings),
        })),
        (other, _) => other.clone(),
    }
}

impl Ledger {
    /// A mesh by name.
    pub fn mesh(&self, id: &MeshId) -> Option<&Mesh> {
        self.meshes.get(id)
    }

    /// All meshes, by name.
    pub fn meshes(&self) -> impl Iterator<Item = &Mesh> {
        self.meshes.meshes.values()
    }
}

#[cfg(test)]
mod tests;

//! The ledger: the core (de-duplication, authorization of the actor, the audit chains) over
//! the domains, wired together here — the one list of domains, the commands each one
//! applies, and the small traits through which one domain sees another.

use x0t_crypto::VerifyingKey;
use x0t_types::{DeviceClass, MeshId, NodeId, PqProfile};

use crate::acl::{self, Acls};
use crate::anchors::Anchors;
use crate::api_keys::ApiKeys;
use crate::command::{Command, ProposedCommand};
use crate::core::audit::{self, AnchorDirectory, AuditChains};
use crate::core::requests::Requests;
use crate::domain::{self, Applied, Domain};
use crate::meshes::{self, Meshes};
use crate::nodes::{self, Nodes};
use crate::stored::{LoadError, StoredChange, StoredRecord};
use crate::{ApplyMeta, Outcome, Reject, command_scope};

/// Declares the ledger's state as one part per domain, and what the core does with every
/// part alike: load it, list it, and collect what changed. **Adding a domain is one line
/// here** (its field and state type), plus its command type's variant in [`Command`] and
/// its arm in [`Ledger::dispatch`].
macro_rules! domains {
    ($($(#[$doc:meta])* $field:ident: $state:ty,)+) => {
        /// The whole replicated state: the core's parts and one per domain.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Ledger {
            $($(#[$doc])* pub(crate) $field: $state,)+
        }

        /// The storage name of every domain, in the ledger's order.
        pub const DOMAINS: &[&str] = &[$(<$state as Domain>::NAME),+];

        impl Ledger {
            /// Rebuilds a ledger from its stored records (from storage or a snapshot), derived
            /// indexes included; refuses records that do not decode or belong to a domain this
            /// build does not know.
            pub fn from_records(
                records: impl IntoIterator<Item = StoredRecord>,
            ) -> Result<Self, LoadError> {
                let mut ledger = Self::default();
                'records: for record in records {
                    $(
                        if record.domain == <$state as Domain>::NAME {
                            domain::load(&mut ledger.$field, &record)?;
                            continue 'records;
                        }
                    )+
                    return Err(LoadError::UnknownDomain {
                        domain: record.domain.chars().take(64).collect(),
                    });
                }
                Ok(ledger)
            }

            /// Every record as stored, domain by domain (for snapshots).
            pub fn records(&self) -> impl Iterator<Item = StoredRecord> + use<> {
                let mut out = Vec::new();
                $(domain::records(&self.$field, &mut out);)+
                out.into_iter()
            }

            /// The records changed since the last call, as stored, each with its new value
            /// (`None`: deleted).
            pub fn take_changes(&mut self) -> Vec<StoredChange> {
                let mut out = Vec::new();
                $(domain::take_changes(&mut self.$field, &mut out);)+
                out
            }

            /// How many records changed since the last [`Ledger::take_changes`].
            pub fn changes_pending(&self) -> usize {
                0 $(+ self.$field.changes().len())+
            }
        }
    };
}

domains! {
    /// Meshes and their settings.
    meshes: Meshes,
    /// Anchors, their identity keys, anchor-join tokens.
    anchors: Anchors,
    /// API keys.
    api_keys: ApiKeys,
    /// Nodes and join tokens.
    nodes: Nodes,
    /// Each mesh's policy versions.
    acl: Acls,
    /// The audit chains (core).
    audit: AuditChains,
    /// Remembered request results (core).
    requests: Requests,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one proposed command. On `Err`, the state is exactly as before (except that
    /// the result of a command with a request id is remembered). A command whose request id
    /// was already applied is not applied again: its first result is returned. Every applied
    /// command appends one entry to its audit chain.
    pub fn apply(
        &mut self,
        proposed: &ProposedCommand,
        meta: ApplyMeta,
    ) -> Result<Outcome, Reject> {
        let Some(request_id) = proposed.request_id else {
            return self.apply_audited(proposed, meta);
        };
        if let Some(remembered) = self.requests.remembered(request_id) {
            return meshes::replayed(remembered, &proposed.command);
        }
        let result = self.apply_audited(proposed, meta);
        self.requests
            .remember(request_id, meta, meshes::without_settings(&result));
        result
    }

    /// Checks who asked, applies, and records the change in the audit chain.
    fn apply_audited(
        &mut self,
        proposed: &ProposedCommand,
        meta: ApplyMeta,
    ) -> Result<Outcome, Reject> {
        let command = &proposed.command;
        let (actor, evidence) =
            audit::check_statement(&self.anchors, command, &proposed.statement)?;
        let applied = self.dispatch(command, meta, &actor)?;
        self.audit.append(
            command_scope(command),
            actor,
            command.action(),
            applied.subject,
            applied.details,
            evidence,
            meta.timestamp,
            meta.index,
        );
        Ok(applied.outcome)
    }

    /// Hands a command to the domain that applies it, with what it may see of the others:
    /// one arm per domain.
    fn dispatch(
        &mut self,
        command: &Command,
        at: ApplyMeta,
        actor: &x0t_types::Actor,
    ) -> Result<Applied, Reject> {
        let Self {
            meshes,
            anchors,
            api_keys,
            nodes,
            acl,
            ..
        } = self;
        // What the nodes domain sees of the others, borrowed for one command.
        macro_rules! node_deps {
            () => {
                nodes::Deps {
                    meshes: &mut *meshes,
                    anchors: &*anchors,
                    acl: &*acl,
                }
            };
        }
        match command {
            Command::Meshes(command) => meshes.apply(command, at),
            Command::Anchors(command) => anchors.apply(command, at),
            Command::ApiKeys(command) => api_keys.apply(command, at),
            Command::Nodes(command) => nodes.apply(&mut node_deps!(), command, at),
            Command::Acl(command) => acl.apply(&*meshes, command, actor, at),
        }
    }
}

// What each domain sees of the others (Cosmos SDK's "expected keepers"): declared by the
// domain that needs it, implemented here by the one that has it.

impl nodes::MeshKeeper for Meshes {
    fn require_mesh(&self, mesh: &MeshId) -> Result<(), Reject> {
        self.require(mesh).map(|_| ())
    }

    fn token_epoch(&self, mesh: &MeshId) -> Option<u64> {
        self.get(mesh).map(|m| m.token_epoch)
    }

    fn bump_token_epoch(&mut self, mesh: &MeshId) -> Result<u64, Reject> {
        Meshes::bump_token_epoch(self, mesh)
    }
}

impl acl::MeshExists for Meshes {
    fn require_mesh(&self, mesh: &MeshId) -> Result<(), Reject> {
        self.require(mesh).map(|_| ())
    }
}

impl nodes::AnchorKeys for Anchors {
    fn anchor_key(&self, node_id: &NodeId) -> Option<VerifyingKey> {
        self.key(node_id)
    }
}

impl AnchorDirectory for Anchors {
    fn is_anchor(&self, node_id: &NodeId) -> bool {
        self.knows(node_id)
    }
}

impl nodes::PqProfiles for Acls {
    fn pq_profile(&self, mesh: &MeshId, class: DeviceClass) -> PqProfile {
        Acls::pq_profile(self, mesh, class)
    }
}

//! Request and response bodies of the HTTP/JSON API, shared by the node, its clients and the
//! browser UI. Binary values travel as text: signed objects in base32 (`x0t_types::base32`),
//! hashes and keys in hex.

use serde::{Deserialize, Serialize};

use crate::{DeviceClass, KeyRole, NodeState, Plan};

/// The JSON body of every error.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `version_mismatch`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// For an invalid document: the 1-based line of the problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// For an invalid document: the 1-based column of the problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

/// Request body of `POST /api/v1/meshes`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMesh {
    /// The mesh name.
    pub name: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// Its plan [default: starter].
    #[serde(default)]
    pub plan: Option<Plan>,
}

/// Request body of `PUT /api/v1/meshes/{mesh}/settings`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    /// The new description.
    pub description: String,
    /// Compare-and-set: apply only if the mesh is at this version.
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// A mesh as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MeshView {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Compare-and-set version.
    pub version: u64,
    /// Its plan.
    pub plan: Plan,
    /// Join-token rotation epoch.
    pub token_epoch: u64,
    /// Creation time, ms since the epoch.
    pub created_at_ms: u64,
    /// Last change, ms since the epoch.
    pub updated_at_ms: u64,
    /// Log index of the last change.
    pub updated_index: u64,
}

/// Request body of `POST /api/v1/meshes/{mesh}/nodes/register`: what `x0t join` sends.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterNode {
    /// The node's signed registration (`SignedRegistration` envelope, base32).
    pub registration: String,
    /// A join token (`x0tj1_…`), if the node has one.
    #[serde(default)]
    pub token: Option<String>,
}

/// Answer to a registration, and what an agent polls while it waits.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's id.
    pub node_id: String,
    /// Its state.
    pub state: NodeState,
    /// Why it was rejected or revoked.
    pub state_reason: Option<String>,
    /// Its overlay address, once approved.
    pub overlay_ip: Option<String>,
    /// Its signed certificate (`x0tc1_…`), once approved.
    pub certificate: Option<String>,
}

/// A node as an admin sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeView {
    /// Its id.
    pub node_id: String,
    /// Its short id (first 16 characters).
    pub short_id: String,
    /// Its mesh.
    pub mesh: String,
    /// Hostname.
    pub hostname: String,
    /// Device class.
    pub device_class: DeviceClass,
    /// State.
    pub state: NodeState,
    /// Why it was rejected or revoked.
    pub state_reason: Option<String>,
    /// Tags it asked for.
    pub requested_tags: Vec<String>,
    /// Tags it holds (its certificate's).
    pub tags: Vec<String>,
    /// Overlay address.
    pub overlay_ip: Option<String>,
    /// libp2p peer id.
    pub peer_id: String,
    /// Registration time, ms since the epoch.
    pub registered_at_ms: u64,
    /// Last change, ms since the epoch.
    pub updated_at_ms: u64,
    /// End of its certificate's validity, ms since the epoch.
    pub certificate_not_after_ms: Option<u64>,
    /// The join token it used (hex id).
    pub token_id: Option<String>,
    /// The node it replaced.
    pub replaces: Option<String>,
}

/// Request body of `POST …/nodes/{id}/approve`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveNode {
    /// Tags to grant [default: the tags the node asked for].
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// Request body of `POST …/nodes/{id}/reject` and `…/revoke`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Why (kept in the audit log and, for revocations, shown to peers).
    #[serde(default)]
    pub reason: String,
}

/// Request body of `POST /api/v1/meshes/{mesh}/tokens` and `…/nodes/{id}/reissue-token`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Validity in seconds, 3,600 (1 h) to 2,592,000 (30 d) [default: 24 h].
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Usable by many nodes (else single use).
    #[serde(default)]
    pub reusable: bool,
    /// For a reusable token: at most this many registrations.
    #[serde(default)]
    pub uses: Option<u32>,
    /// Nodes registering with it are approved at once.
    #[serde(default)]
    pub pre_approved: bool,
    /// Tags it grants.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A join token as issued: its text is shown this once; the ledger keeps only its hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenView {
    /// The token text (`x0tj1_…`), for `x0t join --token`.
    pub token: String,
    /// Its id (hex).
    pub token_id: String,
    /// Its mesh.
    pub mesh: String,
    /// `single_use` or `reusable`.
    pub usage: String,
    /// Most registrations (none: unlimited).
    pub max_uses: Option<u32>,
    /// Approves at once.
    pub pre_approved: bool,
    /// Tags it grants.
    pub tags: Vec<String>,
    /// Start of validity, ms since the epoch.
    pub not_before_ms: u64,
    /// End of validity, ms since the epoch.
    pub not_after_ms: u64,
    /// The node it replaces (`reissue-token`).
    pub for_node: Option<String>,
}

/// Answer of `POST /api/v1/meshes/{mesh}/tokens/rotate`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RotateTokens {
    /// The new epoch.
    pub epoch: u64,
    /// Recorded tokens it invalidated.
    pub invalidated: u32,
}

/// Answer of `GET /api/v1/meshes/{mesh}/audit-logs/verify`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditVerification {
    /// Whether the whole chain verified.
    pub ok: bool,
    /// Entries checked.
    pub entries: u64,
    /// Hash of the last entry (hex).
    pub head_hash: String,
    /// The first position that failed, if any.
    pub first_bad: Option<ChainBreak>,
}

/// Where a chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    /// 0-based position.
    pub index: u64,
    /// Why.
    pub reason: String,
}

/// One audit entry in an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntryView {
    /// Position in the chain.
    pub seq: u64,
    /// Raft log index.
    pub log_index: u64,
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// Who (`key:<id>`, `node:<id>`, `anchor:<id>`).
    pub actor: String,
    /// What, e.g. `node.approve`.
    pub action: String,
    /// To what.
    pub subject: String,
    /// Summary.
    pub details: String,
    /// Signed evidence (hex).
    pub evidence: String,
    /// Previous entry's hash (hex).
    pub prev_hash: String,
    /// This entry's hash (hex).
    pub hash: String,
}

/// An anchor's identity key, as exports and `GET /api/v1/cluster/anchors` carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorKeyView {
    /// Node id.
    pub node_id: String,
    /// Signature algorithm code.
    pub algorithm: u8,
    /// Public key (hex).
    pub public_key: String,
}

/// The JSON export of an audit chain (`GET …/audit-logs/export?format=json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditExport {
    /// Always `x0t-audit-v1`.
    pub format: String,
    /// The mesh.
    pub mesh: String,
    /// Number of entries at export time.
    pub head_len: u64,
    /// Hash of the last entry at export time (hex).
    pub head_hash: String,
    /// Keys of every anchor that ever signed for this cluster.
    pub anchors: Vec<AnchorKeyView>,
    /// The entries, in order.
    pub entries: Vec<AuditEntryView>,
}

/// Request body of `POST /api/v1/meshes/{mesh}/certificates/verify`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyCertificate {
    /// The certificate text (`x0tc1_…`).
    pub certificate: String,
}

/// What an anchor says about a certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertificateStatus {
    /// Signed by a recorded anchor, inside its validity, for a node that is approved now with
    /// exactly this certificate.
    pub valid: bool,
    /// The node it names, if it decoded.
    pub node_id: Option<String>,
    /// The node's state in the ledger.
    pub state: Option<NodeState>,
    /// Why it is not valid (`revoked: …`, `superseded`, a signature error…).
    pub reason: Option<String>,
}

/// Request body of `POST /api/v1/api-keys`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What it may do.
    pub role: KeyRole,
    /// A label.
    #[serde(default)]
    pub label: String,
}

/// A new API key: its text is shown this once; the ledger keeps only its hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiKeyView {
    /// The key text (`x0tadm_…`).
    pub key: String,
    /// Its id.
    pub key_id: String,
    /// Its role.
    pub role: KeyRole,
}

/// An anchor as `GET /api/v1/cluster/anchors` shows it: how to reach it and the key its
/// certificates and statements verify against.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnchorView {
    /// Raft id.
    pub raft_id: u64,
    /// Node id.
    pub node_id: String,
    /// libp2p peer id.
    pub peer_id: String,
    /// Multiaddrs.
    pub addrs: Vec<String>,
    /// API base URL.
    pub api_url: String,
    /// Signature algorithm code.
    pub algorithm: u8,
    /// Public key (hex).
    pub public_key: String,
}

/// Request body of `PUT /api/v1/meshes/{mesh}/acl`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAcl {
    /// The policy document (TOML).
    pub document: String,
    /// Compare-and-set: refuse unless the current policy is at this version (0: none yet).
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// A mesh's ACL policy (`GET /api/v1/meshes/{mesh}/acl`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AclView {
    /// The mesh.
    pub mesh: String,
    /// Goes up by one with each accepted update; 0 while the mesh has the default policy.
    pub version: u64,
    /// The document as it was set (empty for the default policy: deny everything).
    pub document: String,
    /// blake3 of the document, hex.
    pub digest: String,
    /// When it was set (RFC 3339), if ever.
    pub updated_at: Option<String>,
    /// Who set it (`apikey:<id>`), if anyone.
    pub updated_by: Option<String>,
    /// How many rules it has (built-in profile rules included).
    pub rules: u32,
    /// How many policy tests it carries.
    pub tests: u32,
    /// The post-quantum profile each device class gets.
    pub pq_profiles: Vec<ClassProfile>,
}

/// One kept version of a mesh's policy, without its document
/// (`GET /api/v1/meshes/{mesh}/acl/history`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclVersionView {
    /// The version.
    pub version: u64,
    /// blake3 of its document, hex.
    pub digest: String,
    /// When it was set (RFC 3339).
    pub updated_at: String,
    /// Who set it.
    pub updated_by: String,
    /// How many rules it has.
    pub rules: u32,
    /// How many policy tests it carries.
    pub tests: u32,
}

/// One device class and its post-quantum profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassProfile {
    /// The device class.
    pub device_class: DeviceClass,
    /// Its profile.
    pub pq_profile: crate::PqProfile,
}

/// Request body of `POST /api/v1/meshes/{mesh}/acl/explain`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainAcl {
    /// The initiating node: a node id, short id or hostname of the mesh, or attributes
    /// (`tag:robot class:robot`).
    pub src: String,
    /// The receiving node, in the same forms.
    pub dst: String,
    /// Destination port (ignored for ICMP).
    #[serde(default)]
    pub port: u16,
    /// `tcp` (default), `udp` or `icmp`.
    #[serde(default)]
    pub proto: Option<String>,
    /// Explain under this draft document instead of the mesh's policy (its tests are not
    /// run; the answer's `policy_version` is 0).
    #[serde(default)]
    pub document: Option<String>,
}

/// Request body of `POST /api/v1/meshes/{mesh}/acl/validate`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateAcl {
    /// The policy document (TOML).
    pub document: String,
}

/// A policy document that validated and whose tests passed (nothing was saved).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclValidation {
    /// How many rules it has (built-in profile rules included).
    pub rules: u32,
    /// How many policy tests passed.
    pub tests: u32,
    /// The post-quantum profile each device class would get.
    pub pq_profiles: Vec<ClassProfile>,
}

/// Why a flow is allowed or denied (`explain`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclDecision {
    /// Whether the flow may open.
    pub allowed: bool,
    /// The rule that decided, if one did (none: default deny).
    pub deciding_rule: Option<AclRuleRef>,
    /// One sentence on why.
    pub reason: String,
    /// The initiating endpoint, as the policy saw it.
    pub src: String,
    /// The receiving endpoint, as the policy saw it.
    pub dst: String,
    /// `tcp`, `udp` or `icmp`.
    pub proto: String,
    /// The destination port.
    pub port: u16,
    /// Replies on an allowed flow pass (flows are tracked); the reverse direction is a flow of
    /// its own.
    pub replies_allowed: bool,
    /// Every rule, in evaluation order, with what matched.
    pub considered: Vec<ConsideredRule>,
    /// The policy version decided under (0: the default policy).
    pub policy_version: u64,
}

/// A rule as `explain` names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRuleRef {
    /// Position in evaluation order (0-based).
    pub index: u32,
    /// Its name.
    pub name: String,
    /// `allow` or `deny`.
    pub action: String,
    /// Line of its `[[rule]]` header, for document rules.
    pub line: Option<u32>,
    /// `document`, or the built-in profile it comes from.
    pub origin: String,
}

/// One rule's match against a flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsideredRule {
    /// The rule.
    pub rule: AclRuleRef,
    /// Whether `src` matched its source selectors.
    pub src_matched: bool,
    /// Whether `dst` matched its destination selectors.
    pub dst_matched: bool,
    /// Whether the protocol and port matched its ports.
    pub port_matched: bool,
    /// What the rule is (`allow tag:robot -> tag:server ports tcp/443`).
    pub summary: String,
}

// The data plane's views: what members (their local API) and anchors (the node API) report
// of the mesh: topology, MAPE-K events and the self-healing SLO figures.

/// One step of the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A link's probes went unanswered past the limit (Analyze: failure detected).
    LinkDown,
    /// A dead link answered again.
    LinkRecovered,
    /// The best path to a node changed, appeared or vanished (Plan).
    RouteChanged,
    /// Frames to a peer with a session now take another next hop (Execute).
    PathSwitched,
    /// A peer's certificate was verified.
    PeerVerified,
    /// A peer was dropped (revoked, expired certificate).
    PeerDropped,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshEvent {
    /// Increasing from 1 per member run.
    pub id: u64,
    /// Wall clock, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Microseconds since the member started (monotonic: for durations between events).
    pub uptime_us: u64,
    /// What happened.
    pub kind: EventKind,
    /// The node it concerns, if one.
    pub node: Option<String>,
    /// Details for people.
    pub detail: String,
    /// How long it took, where that is known: for `link_down` the silence before the link
    /// was declared dead (detection), for `link_recovered` the outage, for `path_switched`
    /// the time since the failure that caused it (failover).
    pub duration_ms: Option<u64>,
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// How many were measured.
    pub count: usize,
    /// Median (nearest rank), if any.
    pub p50_ms: Option<u64>,
    /// 99th percentile (nearest rank), if any.
    pub p99_ms: Option<u64>,
    /// Largest, if any.
    pub max_ms: Option<u64>,
}

impl Percentiles {
    /// The percentiles of `values` (any order).
    pub fn of(mut values: Vec<u64>) -> Self {
        values.sort_unstable();
        let rank = |p: usize| {
            // Nearest rank: the smallest value with at least p % of values at or below it.
            let n = values.len();
            (n > 0).then(|| values[(n * p).div_ceil(100).clamp(1, n) - 1])
        };
        Self {
            count: values.len(),
            p50_ms: rank(50),
            p99_ms: rank(99),
            max_ms: values.last().copied(),
        }
    }
}

/// What a member measured of itself from its event log: the self-healing SLO figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SloReport {
    /// Events the figures come from (a member keeps its last 1,024).
    pub events: usize,
    /// Wall-clock ms of the oldest of them, if any.
    pub since_ms: Option<u64>,
    /// From a failure (the last reply on the dead link) to traffic on the new path.
    pub failover: Percentiles,
    /// From a failure to its detection (silence before a link was declared dead).
    pub detection: Percentiles,
    /// Time to repair: how long dead links stayed dead before answering again.
    pub link_outage: Percentiles,
    /// Failures detected (`link_down`).
    pub failures: usize,
    /// Failures after which no other path was found within the log (destinations left
    /// unreachable).
    pub unreachable: usize,
}

/// Answer of `GET /api/v1/meshes/{mesh}/topology`: the mesh as this member's link states
/// describe it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Topology {
    /// The member answering.
    pub node_id: String,
    /// Every node known: this one, its peers, and every origin of a link state.
    pub nodes: Vec<TopologyNode>,
    /// Every link a link state mentions.
    pub links: Vec<TopologyLink>,
}

/// A node of the [`Topology`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopologyNode {
    /// Its node id.
    pub node_id: String,
    /// Its overlay address, if its certificate is known here.
    pub overlay_ip: Option<String>,
    /// Whether it is the member answering.
    pub local: bool,
    /// Whether this member has a direct path to it.
    pub neighbour: bool,
    /// Whether this member has a route to it (itself: true).
    pub reachable: bool,
    /// The next hop of that route, when it is not direct.
    pub via: Option<String>,
}

/// A link of the [`Topology`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopologyLink {
    /// One end (the lower node id).
    pub a: String,
    /// The other.
    pub b: String,
    /// `up` (both ends report it, usable), `degraded` (up, with loss), `down` (dead: half
    /// its probes lost), or `one_sided` (only one end reports it: not routed over).
    pub health: String,
    /// The worse direction's round trip, µs.
    pub rtt_micros: Option<u32>,
    /// The worse direction's loss, per thousand probes.
    pub loss_permille: Option<u16>,
    /// Its routing cost, when usable.
    pub cost_micros: Option<u64>,
}

/// Who is calling (`GET /api/v1/session`): what the console shows after sign-in and uses
/// to offer only the actions the caller may take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// The API key's id.
    pub key_id: String,
    /// What it may do.
    pub role: crate::KeyRole,
    /// How the caller signed in: `api_key` (single sign-on will add `oidc`).
    pub method: String,
}

/// The mesh's self-healing figures as an anchor sees them
/// (`GET /api/v1/meshes/{mesh}/slo` on the node API): what its members report to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshSlo {
    /// Members whose link states this anchor holds now.
    pub members_reporting: usize,
    /// Links both ends report, without loss.
    pub links_up: usize,
    /// Links both ends report, with loss.
    pub links_degraded: usize,
    /// Links dead or reported by one end only.
    pub links_down: usize,
    /// Links members stopped reporting (failures seen here).
    pub failures: usize,
    /// Failover times the members measured (failure → traffic on the new path), as they
    /// report them: the newest 1,024.
    pub failover: Percentiles,
    /// Time to repair: how long links stayed unreported before coming back.
    pub link_outage: Percentiles,
    /// Onboarding: approval (the ledger's time) → first link state from the node here.
    pub onboarding: Percentiles,
}

/// Request body of `POST /api/v1/cluster/anchors`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AddAnchor {
    /// Raft id of the new anchor.
    pub raft_id: u64,
    /// How to reach it.
    pub node: crate::AnchorNode,
}

/// Request body of `POST /api/v1/cluster/join-tokens`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJoinToken {
    /// Validity in seconds, 1 h to 30 d [default: 1 h].
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// Answer of `POST /api/v1/cluster/join-tokens`: the token is shown this once; the cluster
/// keeps only its hash.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinTokenView {
    /// The token text (`x0tanc_…`), for `x0t up --join … --token …` on the new anchor.
    pub token: String,
    /// Its public id.
    pub token_id: String,
    /// When it stops being valid, ms since the epoch.
    pub expires_at_ms: u64,
}

/// A snapshot of cluster state for `GET /api/v1/cluster`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This node's Raft id.
    pub id: u64,
    /// This node's role: leader, follower, candidate or learner.
    pub state: String,
    /// The current leader, if known.
    pub leader: Option<u64>,
    /// The current term.
    pub term: u64,
    /// Voting members with their addresses.
    pub voters: std::collections::BTreeMap<u64, crate::AnchorNode>,
    /// Non-voting members.
    pub learners: std::collections::BTreeMap<u64, crate::AnchorNode>,
    /// Index of the last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last applied entry.
    pub last_applied_index: Option<u64>,
    /// Index of the last entry covered by this node's snapshot.
    pub snapshot_index: Option<u64>,
    /// Index up to which this node's log has been purged (covered by a snapshot).
    pub purged_index: Option<u64>,
}

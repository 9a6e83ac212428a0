//! The OpenAPI 3.1 document of the HTTP API, built from [`super::routes`] and from
//! example values of the request and response types (their JSON shapes become the schemas),
//! so the document cannot name a route the router lacks or miss one it serves (tested).

use serde_json::{Map, Value, json};
use x0t_types::api::{
    AclDecision, AclRuleRef, AclValidation, AclVersionView, AclView, AnchorKeyView, AnchorView,
    ApiKeyView, ApproveNode, AuditEntryView, AuditExport, AuditVerification, CertificateStatus,
    ChainBreak, ClassProfile, ConsideredRule, CreateApiKey, CreateMesh, CreateToken, ErrorBody,
    ErrorDetail, ExplainAcl, MeshView, NodeStatus, NodeView, Reason, RegisterNode, RotateTokens,
    SetAcl, TokenView, UpdateSettings, ValidateAcl, VerifyCertificate,
};
use x0t_types::{DeviceClass, KeyRole, NodeState, Plan};

use super::{AddAnchor, Auth, CreateJoinToken, JoinTokenView};

/// A JSON Schema inferred from an example value.
fn schema_of(example: &Value) -> Value {
    match example {
        Value::Null => json!({}),
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Number(n) if n.is_u64() || n.is_i64() => json!({"type": "integer"}),
        Value::Number(_) => json!({"type": "number"}),
        Value::String(_) => json!({"type": "string"}),
        Value::Array(items) => json!({
            "type": "array",
            "items": items.first().map(schema_of).unwrap_or_else(|| json!({})),
        }),
        Value::Object(fields) => {
            let properties: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), schema_of(v)))
                .collect();
            json!({"type": "object", "properties": properties})
        }
    }
}

fn example<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Example values of every named schema.
fn examples() -> Vec<(&'static str, Value)> {
    let node = NodeView {
        node_id: "AAAA…".into(),
        short_id: "AAAAAAAAAAAAAAAA".into(),
        mesh: "default".into(),
        hostname: "robot-7".into(),
        device_class: DeviceClass::Robot,
        state: NodeState::Approved,
        state_reason: Some(String::new()),
        requested_tags: vec!["robot".into()],
        tags: vec!["robot".into()],
        overlay_ip: Some("100.64.0.7".into()),
        peer_id: "12D3KooW…".into(),
        registered_at_ms: 0,
        updated_at_ms: 0,
        certificate_not_after_ms: Some(0),
        token_id: Some(String::new()),
        replaces: Some(String::new()),
    };
    let entry = AuditEntryView {
        seq: 0,
        log_index: 0,
        at_ms: 0,
        actor: "key:…".into(),
        action: "node.approve".into(),
        subject: String::new(),
        details: String::new(),
        evidence: "hex".into(),
        prev_hash: "hex".into(),
        hash: "hex".into(),
    };
    let anchor_key = AnchorKeyView {
        node_id: String::new(),
        algorithm: 101,
        public_key: "hex".into(),
    };
    vec![
        (
            "ErrorBody",
            example(ErrorBody {
                error: ErrorDetail {
                    code: "invalid_policy".into(),
                    message: String::new(),
                    line: Some(7),
                    column: Some(7),
                },
            }),
        ),
        (
            "CreateMesh",
            example(CreateMesh {
                name: "factory".into(),
                description: String::new(),
                plan: Some(Plan::Pro),
            }),
        ),
        (
            "UpdateSettings",
            example(UpdateSettings {
                description: String::new(),
                expected_version: Some(1),
            }),
        ),
        (
            "MeshView",
            example(MeshView {
                name: String::new(),
                description: String::new(),
                version: 1,
                plan: Plan::Starter,
                token_epoch: 0,
                created_at_ms: 0,
                updated_at_ms: 0,
                updated_index: 0,
            }),
        ),
        (
            "RegisterNode",
            example(RegisterNode {
                registration: "base32".into(),
                token: Some("x0tj1_…".into()),
            }),
        ),
        (
            "NodeStatus",
            example(NodeStatus {
                node_id: String::new(),
                state: NodeState::Approved,
                state_reason: Some(String::new()),
                overlay_ip: Some(String::new()),
                certificate: Some("x0tc1_…".into()),
            }),
        ),
        ("NodeView", example(node)),
        (
            "ApproveNode",
            example(ApproveNode {
                tags: Some(vec!["robot".into()]),
            }),
        ),
        (
            "Reason",
            example(Reason {
                reason: String::new(),
            }),
        ),
        (
            "CreateToken",
            example(CreateToken {
                ttl_secs: Some(86_400),
                reusable: true,
                uses: Some(10),
                pre_approved: false,
                tags: vec!["robot".into()],
            }),
        ),
        (
            "TokenView",
            example(TokenView {
                token: "x0tj1_…".into(),
                token_id: String::new(),
                mesh: String::new(),
                usage: "single_use".into(),
                max_uses: Some(1),
                pre_approved: false,
                tags: vec![String::new()],
                not_before_ms: 0,
                not_after_ms: 0,
                for_node: Some(String::new()),
            }),
        ),
        (
            "SetAcl",
            example(SetAcl {
                document: "version = 1\nprofiles = [\"robot-to-server\"]\n".into(),
                expected_version: Some(3),
            }),
        ),
        (
            "AclView",
            example(AclView {
                mesh: "factory".into(),
                version: 4,
                document: "version = 1\n".into(),
                digest: "hex".into(),
                updated_at: Some("2026-11-26T18:00:00.000Z".into()),
                updated_by: Some("key:…".into()),
                rules: 3,
                tests: 2,
                pq_profiles: vec![ClassProfile {
                    device_class: DeviceClass::Sensor,
                    pq_profile: x0t_types::PqProfile::Constrained,
                }],
            }),
        ),
        (
            "AclVersionView",
            example(AclVersionView {
                version: 4,
                digest: "hex".into(),
                updated_at: "2026-11-26T18:00:00.000Z".into(),
                updated_by: "key:…".into(),
                rules: 3,
                tests: 2,
            }),
        ),
        (
            "ExplainAcl",
            example(ExplainAcl {
                src: "robot-7 | <node id> | tag:robot class:robot".into(),
                dst: "tag:server".into(),
                port: 443,
                proto: Some("tcp".into()),
                document: Some("version = 1\n…".into()),
            }),
        ),
        (
            "ValidateAcl",
            example(ValidateAcl {
                document: "version = 1\n".into(),
            }),
        ),
        (
            "AclValidation",
            example(AclValidation {
                rules: 3,
                tests: 2,
                pq_profiles: vec![ClassProfile {
                    device_class: DeviceClass::Sensor,
                    pq_profile: x0t_types::PqProfile::Constrained,
                }],
            }),
        ),
        (
            "AclDecision",
            example({
                let rule = AclRuleRef {
                    index: 0,
                    name: "robot-to-server".into(),
                    action: "allow".into(),
                    line: Some(5),
                    origin: "document".into(),
                };
                AclDecision {
                    allowed: true,
                    deciding_rule: Some(rule.clone()),
                    reason: "allowed: …".into(),
                    src: "tag:robot".into(),
                    dst: "tag:server".into(),
                    proto: "tcp".into(),
                    port: 443,
                    replies_allowed: true,
                    considered: vec![ConsideredRule {
                        rule,
                        src_matched: true,
                        dst_matched: true,
                        port_matched: true,
                        summary: "allow tag:robot -> tag:server any port".into(),
                    }],
                    policy_version: 4,
                }
            }),
        ),
        (
            "RotateTokens",
            example(RotateTokens {
                epoch: 1,
                invalidated: 0,
            }),
        ),
        (
            "AuditVerification",
            example(AuditVerification {
                ok: false,
                entries: 0,
                head_hash: String::new(),
                first_bad: Some(ChainBreak {
                    index: 0,
                    reason: String::new(),
                }),
            }),
        ),
        (
            "MeshSlo",
            example(x0t_types::api::MeshSlo {
                members_reporting: 12,
                links_up: 30,
                links_degraded: 1,
                links_down: 0,
                failures: 2,
                failover: x0t_types::api::Percentiles {
                    count: 2,
                    p50_ms: Some(900),
                    p99_ms: Some(1_020),
                    max_ms: Some(1_020),
                },
                link_outage: x0t_types::api::Percentiles::of(vec![4_200, 61_000]),
                onboarding: x0t_types::api::Percentiles::of(vec![850, 1_300]),
            }),
        ),
        (
            "SessionView",
            example(x0t_types::api::SessionView {
                key_id: "k_3f2a…".into(),
                role: x0t_types::KeyRole::Admin,
                method: "api_key".into(),
            }),
        ),
        (
            "Topology",
            example(x0t_types::api::Topology {
                node_id: String::new(),
                nodes: vec![x0t_types::api::TopologyNode {
                    node_id: "AAAA…".into(),
                    overlay_ip: Some("100.64.0.7".into()),
                    local: false,
                    neighbour: true,
                    reachable: true,
                    via: None,
                }],
                links: vec![x0t_types::api::TopologyLink {
                    a: "AAAA…".into(),
                    b: "BBBB…".into(),
                    health: "up".into(),
                    rtt_micros: Some(420),
                    loss_permille: Some(0),
                    cost_micros: Some(620),
                }],
            }),
        ),
        (
            "AuditExport",
            example(AuditExport {
                format: "x0t-audit-v1".into(),
                mesh: String::new(),
                head_len: 0,
                head_hash: String::new(),
                anchors: vec![anchor_key],
                entries: vec![entry],
            }),
        ),
        (
            "VerifyCertificate",
            example(VerifyCertificate {
                certificate: "x0tc1_…".into(),
            }),
        ),
        (
            "CertificateStatus",
            example(CertificateStatus {
                valid: false,
                node_id: Some(String::new()),
                state: Some(NodeState::Revoked),
                reason: Some(String::new()),
            }),
        ),
        (
            "CreateApiKey",
            example(CreateApiKey {
                role: KeyRole::Viewer,
                label: String::new(),
            }),
        ),
        (
            "ApiKeyView",
            example(ApiKeyView {
                key: "x0tadm_…".into(),
                key_id: String::new(),
                role: KeyRole::Viewer,
            }),
        ),
        (
            "AnchorView",
            example(AnchorView {
                raft_id: 0,
                node_id: String::new(),
                peer_id: String::new(),
                addrs: vec![String::new()],
                api_url: String::new(),
                algorithm: 101,
                public_key: String::new(),
            }),
        ),
        (
            "CreateJoinToken",
            example(CreateJoinToken {
                ttl_secs: Some(3_600),
            }),
        ),
        (
            "JoinTokenView",
            example(JoinTokenView {
                token: "x0tanc_…".into(),
                token_id: String::new(),
                expires_at_ms: 0,
            }),
        ),
        (
            "AddAnchor",
            example(AddAnchor {
                raft_id: 0,
                node: x0t_consensus::AnchorNode {
                    peer_id: String::new(),
                    addrs: vec![String::new()],
                    api_url: String::new(),
                },
            }),
        ),
        (
            "ClusterStatus",
            json!({"id": 0, "state": "leader", "leader": 0, "term": 0, "voters": {}, "learners": {}, "last_log_index": 0, "last_applied_index": 0, "snapshot_index": 0, "purged_index": 0}),
        ),
    ]
}

fn response_schema(name: &str) -> Value {
    match name {
        "text" => json!({"text/plain": {"schema": {"type": "string"}}}),
        "object" => json!({"application/json": {"schema": {"type": "object"}}}),
        list if list.ends_with("[]") => json!({"application/json": {"schema": {
            "type": "array",
            "items": {"$ref": format!("#/components/schemas/{}", &list[..list.len() - 2])},
        }}}),
        name => {
            json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}})
        }
    }
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in super::routes() {
        let mut parameters = Vec::new();
        for name in ["mesh", "id"] {
            if route.path.contains(&format!("{{{name}}}")) {
                parameters.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        let mut operation = json!({
            "summary": route.summary,
            "parameters": parameters,
            "responses": {
                "200": {"description": "success", "content": response_schema(route.response)},
                "default": {"description": "a typed error", "content": response_schema("ErrorBody")},
            },
        });
        if let Some(request) = route.request {
            operation["requestBody"] = json!({"content": response_schema(request)});
        }
        match route.auth {
            Auth::Admin => operation["security"] = json!([{"adminKey": []}]),
            Auth::Key => operation["security"] = json!([{"adminKey": []}, {"viewerKey": []}]),
            Auth::NodeSigned => {
                operation["description"] =
                    json!("Authenticated by the node's own ML-DSA signature over its registration.")
            }
            Auth::Public => {}
        }
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method.to_ascii_lowercase()] = operation;
    }
    let schemas: Map<String, Value> = examples()
        .into_iter()
        .map(|(name, value)| {
            let mut schema = schema_of(&value);
            schema["example"] = value;
            (name.to_owned(), schema)
        })
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "x0t mesh API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every node serves this API. Mutating routes need an admin key (Authorization: Bearer x0tadm_…); reads are linearizable unless ?stale=true.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "adminKey": {"type": "http", "scheme": "bearer", "description": "An API key with the admin role."},
                "viewerKey": {"type": "http", "scheme": "bearer", "description": "An API key with the viewer role (reads only)."},
            },
        },
    })
}

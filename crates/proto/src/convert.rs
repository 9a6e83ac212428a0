//! Conversions between the wire types (`pb`) and the API types of `x0t-types`, both ways: the
//! node answers gRPC calls with what its service layer returns, and clients (the CLI) turn
//! answers back into the types they print.

use x0t_types::api::{
    AclDecision, AclRuleRef, AclValidation, AclVersionView, AclView, AuditVerification, ChainBreak,
    ClassProfile, ConsideredRule, MeshView, NodeStatus, NodeView, RotateTokens, TokenView,
};
use x0t_types::{DeviceClass, NodeState, Plan};

use crate::pb;

/// A node state on the wire.
pub fn node_state_to_pb(state: NodeState) -> pb::NodeState {
    match state {
        NodeState::PendingApproval => pb::NodeState::PendingApproval,
        NodeState::Approved => pb::NodeState::Approved,
        NodeState::Rejected => pb::NodeState::Rejected,
        NodeState::Revoked => pb::NodeState::Revoked,
    }
}

/// A node state from the wire (`None` for unspecified or unknown values).
pub fn node_state_from_pb(value: i32) -> Option<NodeState> {
    match pb::NodeState::try_from(value).ok()? {
        pb::NodeState::Unspecified => None,
        pb::NodeState::PendingApproval => Some(NodeState::PendingApproval),
        pb::NodeState::Approved => Some(NodeState::Approved),
        pb::NodeState::Rejected => Some(NodeState::Rejected),
        pb::NodeState::Revoked => Some(NodeState::Revoked),
    }
}

impl From<MeshView> for pb::Mesh {
    fn from(m: MeshView) -> Self {
        Self {
            name: m.name,
            description: m.description,
            version: m.version,
            plan: m.plan.name().to_owned(),
            token_epoch: m.token_epoch,
            created_at_ms: m.created_at_ms,
            updated_at_ms: m.updated_at_ms,
            updated_index: m.updated_index,
        }
    }
}

impl TryFrom<pb::Mesh> for MeshView {
    type Error = String;

    fn try_from(m: pb::Mesh) -> Result<Self, String> {
        Ok(Self {
            name: m.name,
            description: m.description,
            version: m.version,
            plan: m.plan.parse::<Plan>().map_err(|e| e.to_string())?,
            token_epoch: m.token_epoch,
            created_at_ms: m.created_at_ms,
            updated_at_ms: m.updated_at_ms,
            updated_index: m.updated_index,
        })
    }
}

impl From<NodeStatus> for pb::NodeStatus {
    fn from(s: NodeStatus) -> Self {
        Self {
            node_id: s.node_id,
            state: node_state_to_pb(s.state).into(),
            state_reason: s.state_reason,
            overlay_ip: s.overlay_ip,
            certificate: s.certificate,
        }
    }
}

impl TryFrom<pb::NodeStatus> for NodeStatus {
    type Error = String;

    fn try_from(s: pb::NodeStatus) -> Result<Self, String> {
        Ok(Self {
            node_id: s.node_id,
            state: node_state_from_pb(s.state).ok_or("unknown node state")?,
            state_reason: s.state_reason,
            overlay_ip: s.overlay_ip,
            certificate: s.certificate,
        })
    }
}

impl From<NodeView> for pb::Node {
    fn from(n: NodeView) -> Self {
        Self {
            node_id: n.node_id,
            short_id: n.short_id,
            mesh: n.mesh,
            hostname: n.hostname,
            device_class: n.device_class.name().to_owned(),
            state: node_state_to_pb(n.state).into(),
            state_reason: n.state_reason,
            requested_tags: n.requested_tags,
            tags: n.tags,
            overlay_ip: n.overlay_ip,
            peer_id: n.peer_id,
            registered_at_ms: n.registered_at_ms,
            updated_at_ms: n.updated_at_ms,
            certificate_not_after_ms: n.certificate_not_after_ms,
            token_id: n.token_id,
            replaces: n.replaces,
        }
    }
}

impl TryFrom<pb::Node> for NodeView {
    type Error = String;

    fn try_from(n: pb::Node) -> Result<Self, String> {
        Ok(Self {
            node_id: n.node_id,
            short_id: n.short_id,
            mesh: n.mesh,
            hostname: n.hostname,
            device_class: n
                .device_class
                .parse::<DeviceClass>()
                .map_err(|e| e.to_string())?,
            state: node_state_from_pb(n.state).ok_or("unknown node state")?,
            state_reason: n.state_reason,
            requested_tags: n.requested_tags,
            tags: n.tags,
            overlay_ip: n.overlay_ip,
            peer_id: n.peer_id,
            registered_at_ms: n.registered_at_ms,
            updated_at_ms: n.updated_at_ms,
            certificate_not_after_ms: n.certificate_not_after_ms,
            token_id: n.token_id,
            replaces: n.replaces,
        })
    }
}

impl From<TokenView> for pb::Token {
    fn from(t: TokenView) -> Self {
        Self {
            token: t.token,
            token_id: t.token_id,
            mesh: t.mesh,
            usage: t.usage,
            max_uses: t.max_uses,
            pre_approved: t.pre_approved,
            tags: t.tags,
            not_before_ms: t.not_before_ms,
            not_after_ms: t.not_after_ms,
            for_node: t.for_node,
        }
    }
}

impl From<pb::Token> for TokenView {
    fn from(t: pb::Token) -> Self {
        Self {
            token: t.token,
            token_id: t.token_id,
            mesh: t.mesh,
            usage: t.usage,
            max_uses: t.max_uses,
            pre_approved: t.pre_approved,
            tags: t.tags,
            not_before_ms: t.not_before_ms,
            not_after_ms: t.not_after_ms,
            for_node: t.for_node,
        }
    }
}

impl From<RotateTokens> for pb::RotateTokensResponse {
    fn from(r: RotateTokens) -> Self {
        Self {
            epoch: r.epoch,
            invalidated: r.invalidated,
        }
    }
}

impl From<pb::RotateTokensResponse> for RotateTokens {
    fn from(r: pb::RotateTokensResponse) -> Self {
        Self {
            epoch: r.epoch,
            invalidated: r.invalidated,
        }
    }
}

impl From<AuditVerification> for pb::AuditVerification {
    fn from(v: AuditVerification) -> Self {
        Self {
            ok: v.ok,
            entries: v.entries,
            head_hash: v.head_hash,
            first_bad: v.first_bad.map(|b| pb::ChainBreak {
                index: b.index,
                reason: b.reason,
            }),
        }
    }
}

impl From<pb::AuditVerification> for AuditVerification {
    fn from(v: pb::AuditVerification) -> Self {
        Self {
            ok: v.ok,
            entries: v.entries,
            head_hash: v.head_hash,
            first_bad: v.first_bad.map(|b| ChainBreak {
                index: b.index,
                reason: b.reason,
            }),
        }
    }
}

impl From<AclView> for pb::Acl {
    fn from(a: AclView) -> Self {
        Self {
            mesh: a.mesh,
            version: a.version,
            document: a.document,
            digest: a.digest,
            updated_at: a.updated_at,
            updated_by: a.updated_by,
            rules: a.rules,
            tests: a.tests,
            pq_profiles: a.pq_profiles.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<ClassProfile> for pb::ClassProfile {
    fn from(p: ClassProfile) -> Self {
        Self {
            device_class: p.device_class.name().to_owned(),
            pq_profile: p.pq_profile.name().to_owned(),
        }
    }
}

impl From<AclValidation> for pb::AclValidation {
    fn from(v: AclValidation) -> Self {
        Self {
            rules: v.rules,
            tests: v.tests,
            pq_profiles: v.pq_profiles.into_iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::Acl> for AclView {
    type Error = String;

    fn try_from(a: pb::Acl) -> Result<Self, String> {
        let pq_profiles = a
            .pq_profiles
            .into_iter()
            .map(|p| {
                Ok(ClassProfile {
                    device_class: p.device_class.parse().map_err(|e| format!("{e}"))?,
                    pq_profile: p.pq_profile.parse().map_err(|e| format!("{e}"))?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            mesh: a.mesh,
            version: a.version,
            document: a.document,
            digest: a.digest,
            updated_at: a.updated_at,
            updated_by: a.updated_by,
            rules: a.rules,
            tests: a.tests,
            pq_profiles,
        })
    }
}

impl From<AclRuleRef> for pb::AclRuleRef {
    fn from(r: AclRuleRef) -> Self {
        Self {
            index: r.index,
            name: r.name,
            action: r.action,
            line: r.line,
            origin: r.origin,
        }
    }
}

impl From<pb::AclRuleRef> for AclRuleRef {
    fn from(r: pb::AclRuleRef) -> Self {
        Self {
            index: r.index,
            name: r.name,
            action: r.action,
            line: r.line,
            origin: r.origin,
        }
    }
}

impl From<AclDecision> for pb::AclDecision {
    fn from(d: AclDecision) -> Self {
        Self {
            allowed: d.allowed,
            deciding_rule: d.deciding_rule.map(Into::into),
            reason: d.reason,
            src: d.src,
            dst: d.dst,
            proto: d.proto,
            port: u32::from(d.port),
            replies_allowed: d.replies_allowed,
            considered: d
                .considered
                .into_iter()
                .map(|c| pb::ConsideredRule {
                    rule: Some(c.rule.into()),
                    src_matched: c.src_matched,
                    dst_matched: c.dst_matched,
                    port_matched: c.port_matched,
                    summary: c.summary,
                })
                .collect(),
            policy_version: d.policy_version,
        }
    }
}

impl TryFrom<pb::AclDecision> for AclDecision {
    type Error = String;

    fn try_from(d: pb::AclDecision) -> Result<Self, String> {
        let considered = d
            .considered
            .into_iter()
            .map(|c| {
                Ok(ConsideredRule {
                    rule: c.rule.ok_or("a considered rule without its rule")?.into(),
                    src_matched: c.src_matched,
                    dst_matched: c.dst_matched,
                    port_matched: c.port_matched,
                    summary: c.summary,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            allowed: d.allowed,
            deciding_rule: d.deciding_rule.map(Into::into),
            reason: d.reason,
            src: d.src,
            dst: d.dst,
            proto: d.proto,
            port: u16::try_from(d.port).map_err(|_| format!("port {} out of range", d.port))?,
            replies_allowed: d.replies_allowed,
            considered,
            policy_version: d.policy_version,
        })
    }
}

impl From<AclVersionView> for pb::AclVersion {
    fn from(v: AclVersionView) -> Self {
        Self {
            version: v.version,
            digest: v.digest,
            updated_at: v.updated_at,
            updated_by: v.updated_by,
            rules: v.rules,
            tests: v.tests,
        }
    }
}

impl From<pb::AclVersion> for AclVersionView {
    fn from(v: pb::AclVersion) -> Self {
        Self {
            version: v.version,
            digest: v.digest,
            updated_at: v.updated_at,
            updated_by: v.updated_by,
            rules: v.rules,
            tests: v.tests,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_states_round_trip_and_unknown_values_are_refused() {
        for state in NodeState::ALL {
            assert_eq!(
                node_state_from_pb(node_state_to_pb(state).into()),
                Some(state)
            );
        }
        assert_eq!(node_state_from_pb(0), None);
        assert_eq!(node_state_from_pb(99), None);
    }

    #[test]
    fn nodes_round_trip() {
        let view = NodeView {
            node_id: "n".into(),
            short_id: "s".into(),
            mesh: "m".into(),
            hostname: "h".into(),
            device_class: DeviceClass::Sensor,
            state: NodeState::Revoked,
            state_reason: Some("lost".into()),
            requested_tags: vec!["a".into()],
            tags: vec![],
            overlay_ip: None,
            peer_id: "p".into(),
            registered_at_ms: 1,
            updated_at_ms: 2,
            certificate_not_after_ms: Some(3),
            token_id: None,
            replaces: Some("r".into()),
        };
        let back = NodeView::try_from(pb::Node::from(view.clone())).unwrap();
        assert_eq!(format!("{back:?}"), format!("{view:?}"));
        let bad = pb::Node {
            device_class: "toaster".into(),
            ..pb::Node::from(view)
        };
        assert!(NodeView::try_from(bad).is_err());
    }

    #[test]
    fn acl_views_and_decisions_round_trip() {
        let view = AclView {
            mesh: "m".into(),
            version: 3,
            document: "version = 1\n".into(),
            digest: "ab".into(),
            updated_at: Some("t".into()),
            updated_by: None,
            rules: 2,
            tests: 1,
            pq_profiles: vec![ClassProfile {
                device_class: DeviceClass::Sensor,
                pq_profile: x0t_types::PqProfile::Constrained,
            }],
        };
        let back = AclView::try_from(pb::Acl::from(view.clone())).unwrap();
        assert_eq!(format!("{back:?}"), format!("{view:?}"));
        let rule = AclRuleRef {
            index: 1,
            name: "r".into(),
            action: "deny".into(),
            line: Some(4),
            origin: "document".into(),
        };
        let decision = AclDecision {
            allowed: false,
            deciding_rule: Some(rule.clone()),
            reason: "why".into(),
            src: "tag:a".into(),
            dst: "tag:b".into(),
            proto: "udp".into(),
            port: 53,
            replies_allowed: false,
            considered: vec![ConsideredRule {
                rule,
                src_matched: true,
                dst_matched: false,
                port_matched: true,
                summary: "s".into(),
            }],
            policy_version: 3,
        };
        assert_eq!(
            AclDecision::try_from(pb::AclDecision::from(decision.clone())).unwrap(),
            decision
        );
        let mut wire = pb::AclDecision::from(decision);
        wire.port = 70_000;
        assert!(AclDecision::try_from(wire).is_err());
    }
}

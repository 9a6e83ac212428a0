//! The topology page's model: the mesh's nodes (from the ledger) joined with the links their
//! signed link states report (from the anchor), each with a health the page colours.

use std::collections::BTreeMap;

use x0t_types::NodeState;
use x0t_types::api::{NodeView, Topology};

/// How a node is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeHealth {
    /// Approved, and reporting at least one usable link (or connected to the anchor).
    Connected,
    /// Approved, reporting links, none of them usable.
    Isolated,
    /// Approved but not reporting: its agent is not running, or not connected here.
    Offline,
    /// Waiting for approval.
    Pending,
    /// Revoked or rejected.
    Excluded,
}

impl NodeHealth {
    /// The CSS class (and legend word).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Isolated => "isolated",
            Self::Offline => "offline",
            Self::Pending => "pending",
            Self::Excluded => "excluded",
        }
    }
}

/// A node of the drawing.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphNode {
    /// Its node id.
    pub id: String,
    /// What to write next to it.
    pub label: String,
    /// Its colour.
    pub health: NodeHealth,
}

/// A link of the drawing.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphLink {
    /// Index of one end in the node list.
    pub a: usize,
    /// Index of the other end.
    pub b: usize,
    /// `up`, `degraded`, `down` or `one_sided` (the anchor's word).
    pub health: String,
    /// Round trip, µs, when measured.
    pub rtt_micros: Option<u32>,
}

/// The graph of `nodes` and the links of `topology` between them. Rejected nodes are left
/// out (they never joined); links to nodes the list does not know are dropped.
pub fn build(nodes: &[NodeView], topology: &Topology) -> (Vec<GraphNode>, Vec<GraphLink>) {
    let reporting: BTreeMap<&str, bool> = topology
        .nodes
        .iter()
        .map(|n| (n.node_id.as_str(), n.reachable || n.neighbour))
        .collect();
    let known: std::collections::BTreeSet<&str> =
        nodes.iter().map(|n| n.node_id.as_str()).collect();
    let mut usable: BTreeMap<&str, bool> = BTreeMap::new();
    for link in topology
        .links
        .iter()
        .filter(|l| known.contains(l.a.as_str()) && known.contains(l.b.as_str()))
    {
        let ok = link.health == "up" || link.health == "degraded";
        for end in [&link.a, &link.b] {
            *usable.entry(end.as_str()).or_default() |= ok;
        }
    }
    let mut graph_nodes: Vec<GraphNode> = nodes
        .iter()
        .filter(|n| n.state != NodeState::Rejected)
        .map(|n| {
            let health = match n.state {
                NodeState::PendingApproval => NodeHealth::Pending,
                NodeState::Revoked | NodeState::Rejected => NodeHealth::Excluded,
                NodeState::Approved => match (
                    usable.get(n.node_id.as_str()),
                    reporting.get(n.node_id.as_str()),
                ) {
                    (Some(true), _) => NodeHealth::Connected,
                    (Some(false), _) => NodeHealth::Isolated,
                    (None, Some(true)) => NodeHealth::Connected,
                    _ => NodeHealth::Offline,
                },
            };
            GraphNode {
                id: n.node_id.clone(),
                label: if n.hostname.is_empty() {
                    n.short_id.clone()
                } else {
                    n.hostname.clone()
                },
                health,
            }
        })
        .collect();
    graph_nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let index: BTreeMap<&str, usize> = graph_nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let links = topology
        .links
        .iter()
        .filter_map(|l| {
            Some(GraphLink {
                a: *index.get(l.a.as_str())?,
                b: *index.get(l.b.as_str())?,
                health: l.health.clone(),
                rtt_micros: l.rtt_micros,
            })
        })
        .collect();
    (graph_nodes, links)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::tests::node;
    use x0t_types::DeviceClass;
    use x0t_types::api::{TopologyLink, TopologyNode};

    fn link(a: &str, b: &str, health: &str) -> TopologyLink {
        TopologyLink {
            a: a.into(),
            b: b.into(),
            health: health.into(),
            rtt_micros: Some(300),
            loss_permille: Some(0),
            cost_micros: None,
        }
    }

    #[test]
    fn health_follows_state_and_links() {
        let nodes = vec![
            node("a", NodeState::Approved, DeviceClass::Robot, &[]),
            node("b", NodeState::Approved, DeviceClass::Robot, &[]),
            node("c", NodeState::Approved, DeviceClass::Robot, &[]),
            node("d", NodeState::Approved, DeviceClass::Robot, &[]),
            node("p", NodeState::PendingApproval, DeviceClass::Robot, &[]),
            node("r", NodeState::Revoked, DeviceClass::Robot, &[]),
            node("x", NodeState::Rejected, DeviceClass::Robot, &[]),
        ];
        let id = |i: usize| nodes[i].node_id.clone();
        let topology = Topology {
            node_id: String::new(),
            nodes: vec![TopologyNode {
                node_id: id(3),
                overlay_ip: None,
                local: false,
                neighbour: true,
                reachable: false,
                via: None,
            }],
            links: vec![
                link(&id(0), &id(1), "up"),
                link(&id(2), &id(1), "down"),
                link(&id(2), "unknown-node", "up"),
            ],
        };
        let (graph, links) = build(&nodes, &topology);
        let health: BTreeMap<&str, &str> = graph
            .iter()
            .map(|n| (n.label.as_str(), n.health.name()))
            .collect();
        assert_eq!(health["a"], "connected");
        assert_eq!(health["b"], "connected");
        assert_eq!(health["c"], "isolated", "its only known link is down");
        assert_eq!(
            health["d"], "connected",
            "connected to the anchor, no links yet"
        );
        assert_eq!(health["p"], "pending");
        assert_eq!(health["r"], "excluded");
        assert!(!health.contains_key("x"));
        assert_eq!(links.len(), 2, "the link to an unknown node is dropped");
        assert!(links.iter().all(|l| l.a != l.b));
    }
}

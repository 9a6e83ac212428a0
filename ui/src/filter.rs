//! The node list's filters (state, tag, device class, free text) and the counts the
//! overview shows. Pure: the console filters in the browser, so typing in the search box
//! does not cost a round trip.

use x0t_types::api::NodeView;
use x0t_types::{DeviceClass, NodeState};

/// What the node list shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFilter {
    /// Only nodes in this state.
    pub state: Option<NodeState>,
    /// Only nodes holding or asking for this tag.
    pub tag: Option<String>,
    /// Only nodes of this class.
    pub device_class: Option<DeviceClass>,
    /// Words that must all appear (any case) in the hostname, id, overlay address or tags.
    pub text: String,
}

impl NodeFilter {
    /// Whether `node` passes.
    pub fn matches(&self, node: &NodeView) -> bool {
        if self.state.is_some_and(|s| s != node.state)
            || self.device_class.is_some_and(|c| c != node.device_class)
        {
            return false;
        }
        if let Some(tag) = &self.tag
            && !node
                .tags
                .iter()
                .chain(&node.requested_tags)
                .any(|t| t == tag)
        {
            return false;
        }
        let haystack = format!(
            "{} {} {} {} {} {}",
            node.hostname,
            node.node_id,
            node.overlay_ip.as_deref().unwrap_or(""),
            node.tags.join(" "),
            node.requested_tags.join(" "),
            node.device_class.name(),
        )
        .to_lowercase();
        self.text
            .split_whitespace()
            .all(|word| haystack.contains(&word.to_lowercase()))
    }

    /// The nodes that pass, in the order given.
    pub fn apply<'a>(&self, nodes: &'a [NodeView]) -> Vec<&'a NodeView> {
        nodes.iter().filter(|n| self.matches(n)).collect()
    }
}

/// Every tag held or asked for, sorted, once each.
pub fn all_tags(nodes: &[NodeView]) -> Vec<String> {
    let mut tags: Vec<String> = nodes
        .iter()
        .flat_map(|n| n.tags.iter().chain(&n.requested_tags).cloned())
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// How many nodes are in each state, in [`NodeState::ALL`] order.
pub fn counts_by_state(nodes: &[NodeView]) -> Vec<(NodeState, usize)> {
    NodeState::ALL
        .iter()
        .map(|&s| (s, nodes.iter().filter(|n| n.state == s).count()))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn node(
        host: &str,
        state: NodeState,
        class: DeviceClass,
        tags: &[&str],
    ) -> NodeView {
        let id = format!("{host:a<52}");
        NodeView {
            short_id: id[..16].to_owned(),
            node_id: id,
            mesh: "default".into(),
            hostname: host.into(),
            device_class: class,
            state,
            state_reason: None,
            requested_tags: vec![],
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            overlay_ip: (state == NodeState::Approved).then(|| format!("100.64.0.{}", host.len())),
            peer_id: String::new(),
            registered_at_ms: 0,
            updated_at_ms: 0,
            certificate_not_after_ms: None,
            token_id: None,
            replaces: None,
        }
    }

    fn fleet() -> Vec<NodeView> {
        vec![
            node(
                "robot-1",
                NodeState::Approved,
                DeviceClass::Robot,
                &["robot", "line-1"],
            ),
            node(
                "robot-2",
                NodeState::PendingApproval,
                DeviceClass::Robot,
                &["robot"],
            ),
            node("db", NodeState::Approved, DeviceClass::Server, &["backend"]),
            node("old", NodeState::Revoked, DeviceClass::Sensor, &[]),
        ]
    }

    fn hosts(nodes: Vec<&NodeView>) -> Vec<&str> {
        nodes.into_iter().map(|n| n.hostname.as_str()).collect()
    }

    #[test]
    fn filters_combine() {
        let nodes = fleet();
        assert_eq!(NodeFilter::default().apply(&nodes).len(), 4);
        let robots = NodeFilter {
            device_class: Some(DeviceClass::Robot),
            ..NodeFilter::default()
        };
        assert_eq!(hosts(robots.apply(&nodes)), ["robot-1", "robot-2"]);
        let approved_robots = NodeFilter {
            state: Some(NodeState::Approved),
            ..robots
        };
        assert_eq!(hosts(approved_robots.apply(&nodes)), ["robot-1"]);
        let line = NodeFilter {
            tag: Some("line-1".into()),
            ..NodeFilter::default()
        };
        assert_eq!(hosts(line.apply(&nodes)), ["robot-1"]);
    }

    #[test]
    fn text_matches_every_word_anywhere_in_any_case() {
        let nodes = fleet();
        let search = |text: &str| {
            let filter = NodeFilter {
                text: text.into(),
                ..NodeFilter::default()
            };
            hosts(filter.apply(&nodes))
        };
        assert_eq!(search("ROBOT"), ["robot-1", "robot-2"]);
        assert_eq!(search("robot line-1"), ["robot-1"]);
        assert_eq!(search("backend"), ["db"]);
        assert_eq!(search("100.64.0.2"), ["db"]);
        assert_eq!(search("sensor"), ["old"]);
        assert!(search("nothing-like-this").is_empty());
        assert_eq!(search("   ").len(), 4);
    }

    #[test]
    fn tags_and_counts() {
        let nodes = fleet();
        assert_eq!(all_tags(&nodes), ["backend", "line-1", "robot"]);
        let counts = counts_by_state(&nodes);
        assert_eq!(counts[0], (NodeState::PendingApproval, 1));
        assert_eq!(counts[1], (NodeState::Approved, 2));
        assert_eq!(counts[3], (NodeState::Revoked, 1));
    }
}

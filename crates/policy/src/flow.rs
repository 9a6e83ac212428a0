//! What a decision is about: two endpoints (nodes described by their attributes), a protocol
//! and a port.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use x0t_types::{DeviceClass, NodeId, Tag};

/// Most tags one endpoint may carry in a decision (a node carries at most this many).
pub const MAX_ENDPOINT_TAGS: usize = 64;

/// The transport protocol of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (no ports).
    Icmp,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Self; 3] = [Self::Tcp, Self::Udp, Self::Icmp];

    pub(crate) const fn bit(self) -> u8 {
        match self {
            Self::Tcp => 0b001,
            Self::Udp => 0b010,
            Self::Icmp => 0b100,
        }
    }

    /// `tcp`, `udp` or `icmp`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == text.trim())
            .ok_or_else(|| format!("protocol {text:?}; expected tcp, udp or icmp"))
    }
}

/// A node as the policy sees it: its id (if known), device class and tags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Its node id, when the endpoint is a real node.
    pub node: Option<NodeId>,
    /// Its device class.
    pub class: Option<DeviceClass>,
    /// Its tags.
    pub tags: BTreeSet<Tag>,
}

impl Endpoint {
    /// An endpoint for a real node.
    pub fn node(node: NodeId, class: DeviceClass, tags: impl IntoIterator<Item = Tag>) -> Self {
        Self {
            node: Some(node),
            class: Some(class),
            tags: tags.into_iter().collect(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(node) = &self.node {
            parts.push(format!("node:{}", node.short()));
        }
        if let Some(class) = self.class {
            parts.push(format!("class:{class}"));
        }
        parts.extend(self.tags.iter().map(|t| format!("tag:{t}")));
        if parts.is_empty() {
            f.write_str("(a node with no tags)")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;

    /// Attributes separated by spaces or commas: `tag:robot tag:site-a class:robot`,
    /// `node:<full id>`.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut endpoint = Endpoint::default();
        for item in text.split([' ', ',']).filter(|s| !s.is_empty()) {
            let (kind, value) = item.split_once(':').ok_or_else(|| {
                format!("endpoint attribute {item:?} needs a kind: tag:NAME, class:NAME or node:ID")
            })?;
            match kind {
                "tag" => {
                    if endpoint.tags.len() == MAX_ENDPOINT_TAGS {
                        return Err(format!("more than {MAX_ENDPOINT_TAGS} tags"));
                    }
                    endpoint
                        .tags
                        .insert(Tag::new(value).map_err(|e| e.to_string())?);
                }
                "class" => {
                    let class = value.parse::<DeviceClass>().map_err(|e| e.to_string())?;
                    if endpoint.class.replace(class).is_some() {
                        return Err(format!("{text:?} names two device classes"));
                    }
                }
                "node" => {
                    let node = value.parse::<NodeId>().map_err(|e| e.to_string())?;
                    if endpoint.node.replace(node).is_some() {
                        return Err(format!("{text:?} names two nodes"));
                    }
                }
                other => {
                    return Err(format!(
                        "unknown endpoint attribute kind {other:?}; expected tag, class or node"
                    ));
                }
            }
        }
        if endpoint == Endpoint::default() {
            return Err("an endpoint needs at least one tag:, class: or node: attribute".into());
        }
        Ok(endpoint)
    }
}

/// One flow to decide: `src` opens a connection to `dst` on `protocol`/`port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// The initiating node.
    pub src: Endpoint,
    /// The receiving node.
    pub dst: Endpoint,
    /// The protocol.
    pub protocol: Protocol,
    /// The destination port (ignored for ICMP).
    pub port: u16,
}

//! The policy document: its TOML form, validation with line/column errors, and the
//! validated model ([`PolicyDocument`]) both evaluators work from.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use x0t_types::{DeviceClass, NodeId, PqProfile, Tag};

use crate::flow::{Endpoint, Protocol};

/// The only document version this release reads.
pub const POLICY_VERSION: i64 = 1;
/// The largest document accepted, in bytes (checked before parsing).
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;
/// Most rules in one document (built-in profile rules included).
pub const MAX_RULES: usize = 20_000;
/// Most groups in one document.
pub const MAX_GROUPS: usize = 1_000;
/// Most selectors in one rule side or one group.
pub const MAX_SELECTORS: usize = 256;
/// Most port ranges in one rule.
pub const MAX_PORT_RANGES: usize = 64;
/// Most policy tests in one document.
pub const MAX_TESTS: usize = 1_000;
/// Longest rule, group or test name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Let the flow through.
    Allow,
    /// Stop the flow; beats every allow.
    Deny,
}

impl Action {
    /// `allow` or `deny`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Names a set of nodes on one side of a rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Selector {
    /// `*`: every node.
    Any,
    /// `tag:NAME`: nodes carrying the tag.
    Tag(Tag),
    /// `class:NAME`: nodes of the device class.
    Class(DeviceClass),
    /// `node:ID`: one node, by its full id.
    Node(NodeId),
    /// `group:NAME`: the union of the group's selectors.
    Group(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Tag(tag) => write!(f, "tag:{tag}"),
            Self::Class(class) => write!(f, "class:{class}"),
            Self::Node(node) => write!(f, "node:{node}"),
            Self::Group(group) => write!(f, "group:{group}"),
        }
    }
}

impl FromStr for Selector {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "*" {
            return Ok(Self::Any);
        }
        let Some((kind, value)) = text.split_once(':') else {
            return Err(format!(
                "selector {text:?} needs a kind: tag:NAME, class:NAME, node:ID, group:NAME or *"
            ));
        };
        match kind {
            "tag" => Tag::new(value).map(Self::Tag).map_err(|e| e.to_string()),
            "class" => value
                .parse::<DeviceClass>()
                .map(Self::Class)
                .map_err(|e| e.to_string()),
            "node" => value.parse::<NodeId>().map(Self::Node).map_err(|e| {
                format!("{e} (use the full 52-character id shown by `x0t nodes show`)")
            }),
            "group" => {
                check_name("group", value)?;
                Ok(Self::Group(value.to_owned()))
            }
            other => Err(format!(
                "unknown selector kind {other:?} in {text:?}; expected tag, class, node or group"
            )),
        }
    }
}

/// A set of protocols a port range applies to (bit set of [`Protocol`]s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProtocolSet(u8);

impl ProtocolSet {
    /// TCP and UDP: what a bare port number means.
    pub const TCP_UDP: Self = Self(0b011);
    /// Every protocol.
    pub const ALL: Self = Self(0b111);

    /// The set holding one protocol.
    pub const fn only(protocol: Protocol) -> Self {
        Self(protocol.bit())
    }

    /// Whether the set holds `protocol`.
    pub const fn contains(self, protocol: Protocol) -> bool {
        self.0 & protocol.bit() != 0
    }
}

/// One entry of a rule's `ports`: protocols and an inclusive port range (ignored for ICMP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// The protocols.
    pub protocols: ProtocolSet,
    /// First port.
    pub first: u16,
    /// Last port (inclusive).
    pub last: u16,
}

impl PortRange {
    /// Whether a flow of `protocol` to `port` falls in the range.
    pub const fn matches(&self, protocol: Protocol, port: u16) -> bool {
        self.protocols.contains(protocol)
            && (matches!(protocol, Protocol::Icmp) || (self.first <= port && port <= self.last))
    }
}

impl FromStr for PortRange {
    type Err = String;

    /// `443`, `8000-8100`, `tcp/443`, `udp/53`, `tcp` (all TCP ports), `icmp`, `*`.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let all = |protocols| PortRange {
            protocols,
            first: 0,
            last: u16::MAX,
        };
        match text {
            "*" | "any" => return Ok(all(ProtocolSet::ALL)),
            "tcp" => return Ok(all(ProtocolSet::only(Protocol::Tcp))),
            "udp" => return Ok(all(ProtocolSet::only(Protocol::Udp))),
            "icmp" => return Ok(all(ProtocolSet::only(Protocol::Icmp))),
            _ => {}
        }
        let (protocols, range) = match text.split_once('/') {
            Some(("tcp", range)) => (ProtocolSet::only(Protocol::Tcp), range),
            Some(("udp", range)) => (ProtocolSet::only(Protocol::Udp), range),
            Some((other, _)) => {
                return Err(format!(
                    "unknown protocol {other:?} in {text:?}; expected tcp or udp (icmp has no ports)"
                ));
            }
            None => (ProtocolSet::TCP_UDP, text),
        };
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{p:?} in {text:?} is not a port (1-65535)"))
        };
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(range)?;
                (p, p)
            }
        };
        if first > last {
            return Err(format!("port range {text:?} runs backwards"));
        }
        Ok(Self {
            protocols,
            first,
            last,
        })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocols.0 {
            0b001 => "tcp/",
            0b010 => "udp/",
            0b100 => return f.write_str("icmp"),
            0b111 => return f.write_str("*"),
            _ => "",
        };
        if self.first == 0 && self.last == u16::MAX {
            return f.write_str(proto.trim_end_matches('/'));
        }
        if self.first == self.last {
            write!(f, "{proto}{}", self.first)
        } else {
            write!(f, "{proto}{}-{}", self.first, self.last)
        }
    }
}

/// Where a rule comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleOrigin {
    /// A `[[rule]]` of the document, at this line.
    Document {
        /// 1-based line of its `[[rule]]` header.
        line: usize,
    },
    /// A built-in profile named in `profiles`.
    Profile(BuiltinProfile),
}

/// One rule: `action` flows from `src` to `dst` on `ports` (empty: every port and protocol).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Its name (given, or `rule #N`).
    pub name: String,
    /// Allow or deny.
    pub action: Action,
    /// Selectors of the initiating side.
    pub src: Vec<Selector>,
    /// Selectors of the receiving side.
    pub dst: Vec<Selector>,
    /// Port ranges; empty means every protocol and port.
    pub ports: Vec<PortRange>,
    /// Where it came from.
    pub origin: RuleOrigin,
}

/// The built-in profiles a document can name in `profiles`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuiltinProfile {
    /// Allow robots (tag or class `robot`) to open flows to servers (tag or class `server`),
    /// every port. Replies flow back; servers cannot open flows to robots.
    RobotToServer,
    /// Deny flows between two nodes of the same segment (a tag both carry) unless an allow
    /// rule names that tag on both sides (`src = tag:T`, `dst = tag:T`).
    DenyEastWest,
}

impl BuiltinProfile {
    /// Every profile.
    pub const ALL: [Self; 2] = [Self::RobotToServer, Self::DenyEastWest];

    /// Its name in documents.
    pub const fn name(self) -> &'static str {
        match self {
            Self::RobotToServer => "robot-to-server",
            Self::DenyEastWest => "deny-east-west",
        }
    }

    /// The rules it adds (after the document's own).
    pub(crate) fn rules(self) -> Vec<Rule> {
        match self {
            Self::RobotToServer => {
                let side = |name: &str, class| {
                    [
                        Tag::new(name).ok().map(Selector::Tag),
                        Some(Selector::Class(class)),
                    ]
                    .into_iter()
                    .flatten()
                    .collect()
                };
                vec![Rule {
                    name: "robot-to-server".into(),
                    action: Action::Allow,
                    src: side("robot", DeviceClass::Robot),
                    dst: side("server", DeviceClass::Server),
                    ports: Vec::new(),
                    origin: RuleOrigin::Profile(self),
                }]
            }
            Self::DenyEastWest => Vec::new(),
        }
    }
}

impl fmt::Display for BuiltinProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A policy test: the decision the document must reach for one flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyTest {
    /// Its name (given, or `test #N`).
    pub name: String,
    /// 1-based line of its `[[test]]` header.
    pub line: usize,
    /// The initiating node, described by its attributes.
    pub src: Endpoint,
    /// The receiving node.
    pub dst: Endpoint,
    /// The protocol.
    pub protocol: Protocol,
    /// The destination port (0 for ICMP).
    pub port: u16,
    /// The expected action.
    pub expect: Action,
    /// The rule expected to decide, if the test names one (`rule = "..."`).
    pub rule: Option<String>,
}

/// Deny-east-west configuration: which tags define segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segments {
    /// Every tag is a segment.
    EveryTag,
    /// Only these tags.
    Only(BTreeSet<Tag>),
}

impl Segments {
    /// Whether `tag` defines a segment.
    pub fn contains(&self, tag: &Tag) -> bool {
        match self {
            Self::EveryTag => true,
            Self::Only(tags) => tags.contains(tag),
        }
    }
}

/// A validated policy document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDocument {
    /// Named groups of selectors (no nesting).
    pub groups: BTreeMap<String, Vec<Selector>>,
    /// The built-in profiles in use.
    pub profiles: Vec<BuiltinProfile>,
    /// Segments for deny-east-west (`None` when that profile is not in use).
    pub segments: Option<Segments>,
    /// Post-quantum profile per device class, where the document overrides the default.
    pub pq: BTreeMap<DeviceClass, PqProfile>,
    /// Every rule in evaluation order: the document's, then the profiles'.
    pub rules: Vec<Rule>,
    /// The document's policy tests.
    pub tests: Vec<PolicyTest>,
}

impl PolicyDocument {
    /// The default-deny document: no rules, default PQ profiles.
    pub fn empty() -> Self {
        Self {
            groups: BTreeMap::new(),
            profiles: Vec::new(),
            segments: None,
            pq: BTreeMap::new(),
            rules: Vec::new(),
            tests: Vec::new(),
        }
    }

    /// The PQ profile a node of `class` gets under this document.
    pub fn pq_profile(&self, class: DeviceClass) -> PqProfile {
        self.pq
            .get(&class)
            .copied()
            .unwrap_or_else(|| class.default_pq_profile())
    }
}

/// Refuses a group, rule or test name that is empty, too long or not printable.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("{what} name must be 1-{MAX_NAME_LEN} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{what} name {name:?} contains control characters"));
    }
    Ok(())
}

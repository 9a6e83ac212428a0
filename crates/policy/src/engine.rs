//! The compiled policy: an index from endpoint attributes to the rules that mention them.
//!
//! Rules are laid out denies first, then allows, each group in document order; each position
//! is one bit. Every attribute a rule side mentions (a tag, a device class, a node id, or "any")
//! maps to the bit set of rules whose that side it satisfies (groups are expanded at compile
//! time). Deciding a flow ORs the sets of the source's attributes and of the destination's,
//! ANDs the two, and walks the set bits in order: the first whose ports match decides (a deny,
//! or an allow that deny-east-west does not veto). The cost is a few word operations per 64
//! rules plus the candidates' port checks, instead of matching every selector of every rule.

use std::collections::{BTreeSet, HashMap};

use x0t_types::api::{AclDecision, AclRuleRef, ConsideredRule};
use x0t_types::{DeviceClass, NodeId, PqProfile, Tag};

use crate::reference::selector_matches;
use crate::{
    Action, DEFAULT_DENY, Endpoint, Flow, PolicyDocument, PolicyError, PortRange, Protocol, Rule,
    RuleOrigin, Selector, Verdict,
};

/// Bit sets are stored sparsely: (word index, bits) for each non-zero word.
type SparseBits = Vec<(u32, u64)>;

/// The attribute id every endpoint has ("any").
const ANY: u32 = 0;

/// A policy document compiled for fast decisions.
#[derive(Clone, Debug)]
pub struct Policy {
    document: PolicyDocument,
    /// Rule positions need this many 64-bit words.
    words: usize,
    tags: HashMap<Tag, u32>,
    classes: [Option<u32>; 8],
    nodes: HashMap<NodeId, u32>,
    /// By attribute id: the rules whose source side it satisfies.
    src_index: Vec<SparseBits>,
    /// By attribute id: the rules whose destination side it satisfies.
    dst_index: Vec<SparseBits>,
    /// By position: the rule's index in the document.
    order: Vec<u32>,
    /// By position: the rule's port ranges (empty: any).
    ports: Vec<Vec<PortRange>>,
    /// Positions below this hold deny rules.
    deny_count: usize,
    /// By position: the tags an allow rule names on both sides (deny-east-west exemptions).
    explicit: Vec<Vec<Tag>>,
}

/// An endpoint resolved against one compiled policy: its attribute ids and segment tags.
/// Resolve a peer once (when its certificate arrives) and decide its flows with
/// [`Policy::decide_resolved`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedEndpoint {
    attrs: Vec<u32>,
    segments: Vec<Tag>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Attr {
    Any,
    Tag(Tag),
    Class(DeviceClass),
    Node(NodeId),
}

impl Policy {
    /// The default policy: no rules, everything denied, default PQ profiles.
    pub fn deny_all() -> Self {
        Self::compile(PolicyDocument::empty())
    }

    /// Parses, validates and compiles a document, then runs its policy tests; a failing test
    /// refuses the document, naming the test.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let policy = Self::compile(PolicyDocument::parse(text)?);
        policy.check_tests()?;
        Ok(policy)
    }

    /// Compiles a validated document (its tests are not run; see [`Policy::check_tests`]).
    pub fn compile(document: PolicyDocument) -> Self {
        let mut interned: HashMap<Attr, u32> = HashMap::from([(Attr::Any, ANY)]);
        let mut intern = |attr: Attr| {
            let next = u32::try_from(interned.len()).unwrap_or(u32::MAX);
            *interned.entry(attr).or_insert(next)
        };
        // Denies first, then allows, each in document order.
        let order: Vec<u32> = (0..document.rules.len())
            .filter(|&i| document.rules[i].action == Action::Deny)
            .chain((0..document.rules.len()).filter(|&i| document.rules[i].action == Action::Allow))
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        let deny_count = document
            .rules
            .iter()
            .filter(|r| r.action == Action::Deny)
            .count();
        let words = order.len().div_ceil(64);

        // Attribute ids per rule side, groups expanded.
        let mut sides: Vec<(Vec<u32>, Vec<u32>)> = Vec::with_capacity(order.len());
        for &index in &order {
            let rule = &document.rules[index as usize];
            let mut expand = |selectors: &[Selector]| {
                let mut attrs = BTreeSet::new();
                let mut add = |selector: &Selector| match selector {
                    Selector::Any => Some(intern(Attr::Any)),
                    Selector::Tag(tag) => Some(intern(Attr::Tag(tag.clone()))),
                    Selector::Class(class) => Some(intern(Attr::Class(*class))),
                    Selector::Node(node) => Some(intern(Attr::Node(*node))),
                    Selector::Group(_) => None,
                };
                for selector in selectors {
                    if let Selector::Group(group) = selector {
                        for member in document.groups.get(group).into_iter().flatten() {
                            attrs.extend(add(member));
                        }
                    } else {
                        attrs.extend(add(selector));
                    }
                }
                attrs.into_iter().collect::<Vec<_>>()
            };
            let src = expand(&rule.src);
            let dst = expand(&rule.dst);
            sides.push((src, dst));
        }

        let mut src_index: Vec<SparseBits> = vec![Vec::new(); interned.len()];
        let mut dst_index: Vec<SparseBits> = vec![Vec::new(); interned.len()];
        let set = |index: &mut Vec<SparseBits>, attr: u32, position: usize| {
            let word = u32::try_from(position / 64).unwrap_or(u32::MAX);
            let bit = 1u64 << (position % 64);
            let bits = &mut index[attr as usize];
            // Positions are visited in increasing order, so the last word is the one to extend.
            match bits.last_mut() {
                Some((w, b)) if *w == word => *b |= bit,
                _ => bits.push((word, bit)),
            }
        };
        for (position, (src, dst)) in sides.iter().enumerate() {
            for &attr in src {
                set(&mut src_index, attr, position);
            }
            for &attr in dst {
                set(&mut dst_index, attr, position);
            }
        }

        let explicit = order
            .iter()
            .map(|&index| {
                let rule = &document.rules[index as usize];
                if rule.action == Action::Deny || document.segments.is_none() {
                    return Vec::new();
                }
                rule.src
                    .iter()
                    .filter_map(|s| match s {
                        Selector::Tag(tag) if rule.dst.contains(s) => Some(tag.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let ports = order
            .iter()
            .map(|&index| document.rules[index as usize].ports.clone())
            .collect();

        let mut tags = HashMap::new();
        let mut classes = [None; 8];
        let mut nodes = HashMap::new();
        for (attr, id) in interned {
            match attr {
                Attr::Any => {}
                Attr::Tag(tag) => {
                    tags.insert(tag, id);
                }
                Attr::Class(class) => classes[usize::from(class.code()) % 8] = Some(id),
                Attr::Node(node) => {
                    nodes.insert(node, id);
                }
            }
        }
        Self {
            document,
            words,
            tags,
            classes,
            nodes,
            src_index,
            dst_index,
            order,
            ports,
            deny_count,
            explicit,
        }
    }

    /// The validated document this policy was compiled from.
    pub fn document(&self) -> &PolicyDocument {
        &self.document
    }

    /// The PQ profile a node of `class` gets.
    pub fn pq_profile(&self, class: DeviceClass) -> PqProfile {
        self.document.pq_profile(class)
    }

    /// Resolves an endpoint's attributes to this policy's ids (attributes no rule mentions
    /// are dropped; segment tags are kept for deny-east-west).
    pub fn resolve(&self, endpoint: &Endpoint) -> ResolvedEndpoint {
        let mut attrs = vec![ANY];
        if let Some(class) = endpoint.class
            && let Some(id) = self.classes[usize::from(class.code()) % 8]
        {
            attrs.push(id);
        }
        if let Some(node) = &endpoint.node
            && let Some(&id) = self.nodes.get(node)
        {
            attrs.push(id);
        }
        attrs.extend(endpoint.tags.iter().filter_map(|tag| self.tags.get(tag)));
        let segments = match &self.document.segments {
            Some(segments) => endpoint
                .tags
                .iter()
                .filter(|tag| segments.contains(tag))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        ResolvedEndpoint { attrs, segments }
    }

    /// Decides a flow.
    pub fn decide(&self, flow: &Flow) -> Verdict {
        self.decide_resolved(
            &self.resolve(&flow.src),
            &self.resolve(&flow.dst),
            flow.protocol,
            flow.port,
        )
    }

    /// Decides a flow between two resolved endpoints (the hot path).
    pub fn decide_resolved(
        &self,
        src: &ResolvedEndpoint,
        dst: &ResolvedEndpoint,
        protocol: Protocol,
        port: u16,
    ) -> Verdict {
        let words = self.words;
        let mut on_stack = [0u64; 64];
        let mut on_heap = Vec::new();
        let buffer: &mut [u64] = if 2 * words <= on_stack.len() {
            &mut on_stack[..2 * words]
        } else {
            on_heap.resize(2 * words, 0);
            &mut on_heap
        };
        let (src_bits, dst_bits) = buffer.split_at_mut(words);
        for &attr in &src.attrs {
            for &(word, bits) in &self.src_index[attr as usize] {
                src_bits[word as usize] |= bits;
            }
        }
        for &attr in &dst.attrs {
            for &(word, bits) in &self.dst_index[attr as usize] {
                dst_bits[word as usize] |= bits;
            }
        }
        let mut shared: Option<Vec<&Tag>> = None;
        let mut vetoed = false;
        for (word, (s, d)) in src_bits.iter().zip(dst_bits.iter()).enumerate() {
            let mut candidates = s & d;
            while candidates != 0 {
                let position = word * 64 + candidates.trailing_zeros() as usize;
                candidates &= candidates - 1;
                let ports = &self.ports[position];
                if !ports.is_empty() && !ports.iter().any(|p| p.matches(protocol, port)) {
                    continue;
                }
                let rule = self.order[position] as usize;
                if position < self.deny_count {
                    return Verdict::Denied { rule };
                }
                let shared = shared.get_or_insert_with(|| shared_segments(src, dst));
                if shared.is_empty() || self.explicit[position].iter().any(|t| shared.contains(&t))
                {
                    return Verdict::Allowed { rule };
                }
                vetoed = true;
            }
        }
        match shared.and_then(|s| s.first().copied().cloned()) {
            Some(segment) if vetoed => Verdict::EastWest { segment },
            _ => Verdict::NoRuleMatched,
        }
    }

    /// Runs the document's policy tests; the error names the first that fails.
    pub fn check_tests(&self) -> Result<(), PolicyError> {
        let mut failures = Vec::new();
        for test in &self.document.tests {
            let verdict = self.decide(&Flow {
                src: test.src.clone(),
                dst: test.dst.clone(),
                protocol: test.protocol,
                port: test.port,
            });
            let decided_by = self.deciding_name(&verdict);
            let action_ok = verdict.allowed() == (test.expect == Action::Allow);
            let rule_ok = test.rule.as_ref().is_none_or(|r| *r == decided_by);
            if !(action_ok && rule_ok) {
                failures.push((test, verdict, decided_by));
            }
        }
        let Some((test, verdict, decided_by)) = failures.first() else {
            return Ok(());
        };
        let action = |allowed: bool| if allowed { "allow" } else { "deny" };
        Err(PolicyError::TestFailed {
            name: test.name.clone(),
            line: test.line,
            expected: match &test.rule {
                Some(rule) => format!("{} by {rule:?}", test.expect),
                None => test.expect.to_string(),
            },
            got: format!("{} by {decided_by:?}", action(verdict.allowed())),
            more: failures.len() - 1,
        })
    }

    /// The name of whatever decided: a rule's name, `deny-east-west` or `default-deny`.
    pub fn deciding_name(&self, verdict: &Verdict) -> String {
        match verdict {
            Verdict::Allowed { rule } | Verdict::Denied { rule } => self
                .document
                .rules
                .get(*rule)
                .map_or_else(String::new, |r| r.name.clone()),
            Verdict::EastWest { .. } => crate::BuiltinProfile::DenyEastWest.name().to_owned(),
            Verdict::NoRuleMatched => DEFAULT_DENY.to_owned(),
        }
    }

    /// Explains a flow: the decision, the deciding rule, and how every rule matched.
    /// `version` is the policy version to report.
    pub fn explain(&self, flow: &Flow, version: u64) -> AclDecision {
        let verdict = self.decide(flow);
        let considered: Vec<ConsideredRule> = self
            .document
            .rules
            .iter()
            .enumerate()
            .map(|(index, rule)| ConsideredRule {
                rule: rule_ref(index, rule),
                src_matched: rule
                    .src
                    .iter()
                    .any(|s| selector_matches(&self.document, s, &flow.src)),
                dst_matched: rule
                    .dst
                    .iter()
                    .any(|s| selector_matches(&self.document, s, &flow.dst)),
                port_matched: rule.ports.is_empty()
                    || rule
                        .ports
                        .iter()
                        .any(|p| p.matches(flow.protocol, flow.port)),
                summary: summary(rule),
            })
            .collect();
        let what = format!(
            "{} {} -> {} {}",
            flow.protocol,
            flow.src,
            flow.dst,
            port_text(flow)
        );
        let (deciding_rule, reason) = match &verdict {
            Verdict::Allowed { rule } => {
                let r = &self.document.rules[*rule];
                (
                    Some(rule_ref(*rule, r)),
                    format!(
                        "allowed: rule {:?} allows {what}, and no deny rule matches",
                        r.name
                    ),
                )
            }
            Verdict::Denied { rule } => {
                let r = &self.document.rules[*rule];
                (
                    Some(rule_ref(*rule, r)),
                    format!("denied: rule {:?} denies {what} (deny beats allow)", r.name),
                )
            }
            Verdict::EastWest { segment } => (
                None,
                format!(
                    "denied by deny-east-west: both nodes are in segment tag:{segment} and no matching allow rule names tag:{segment} on both sides"
                ),
            ),
            Verdict::NoRuleMatched => (None, format!("denied by default: no rule allows {what}")),
        };
        AclDecision {
            allowed: verdict.allowed(),
            deciding_rule,
            reason,
            src: flow.src.to_string(),
            dst: flow.dst.to_string(),
            proto: flow.protocol.to_string(),
            port: if flow.protocol == Protocol::Icmp {
                0
            } else {
                flow.port
            },
            replies_allowed: verdict.allowed(),
            considered,
            policy_version: version,
        }
    }
}

fn shared_segments<'a>(src: &'a ResolvedEndpoint, dst: &ResolvedEndpoint) -> Vec<&'a Tag> {
    // Both lists are sorted (they come from BTreeSets).
    src.segments
        .iter()
        .filter(|tag| dst.segments.binary_search(tag).is_ok())
        .collect()
}

fn port_text(flow: &Flow) -> String {
    if flow.protocol == Protocol::Icmp {
        String::new()
    } else {
        format!("port {}", flow.port)
    }
}

fn rule_ref(index: usize, rule: &Rule) -> AclRuleRef {
    AclRuleRef {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        name: rule.name.clone(),
        action: rule.action.to_string(),
        line: match rule.origin {
            RuleOrigin::Document { line } => u32::try_from(line).ok(),
            RuleOrigin::Profile(_) => None,
        },
        origin: match rule.origin {
            RuleOrigin::Document { .. } => "document".into(),
            RuleOrigin::Profile(profile) => format!("profile {profile}"),
        },
    }
}

fn summary(rule: &Rule) -> String {
    let list = |selectors: &[Selector]| {
        selectors
            .iter()
            .map(|s| match s {
                Selector::Node(node) => format!("node:{}", node.short()),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let ports = if rule.ports.is_empty() {
        "any port".to_owned()
    } else {
        format!(
            "ports {}",
            rule.ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    format!(
        "{} {} -> {} {ports}",
        rule.action,
        list(&rule.src),
        list(&rule.dst)
    )
}

/// The human-readable form of an explanation (what `x0t acl explain` prints).
pub fn explain_text(decision: &AclDecision) -> String {
    let mut out = format!(
        "{}  {} {} -> {}{}\n  {}\n",
        if decision.allowed { "ALLOW" } else { "DENY" },
        decision.proto,
        decision.src,
        decision.dst,
        if decision.proto == "icmp" {
            String::new()
        } else {
            format!(" port {}", decision.port)
        },
        decision.reason,
    );
    if decision.allowed {
        out.push_str(
            "  replies on this flow are allowed; the reverse direction needs its own rule\n",
        );
    }
    out.push_str(&format!(
        "rules considered (policy version {}):\n",
        decision.policy_version
    ));
    if decision.considered.is_empty() {
        out.push_str("  (none: the policy has no rules)\n");
    }
    // Names in one column, as wide as the longest (within reason).
    let width = decision
        .considered
        .iter()
        .map(|c| c.rule.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    for c in &decision.considered {
        let mark = |ok: bool| if ok { "yes" } else { "no" };
        let deciding = decision
            .deciding_rule
            .as_ref()
            .is_some_and(|d| d.index == c.rule.index);
        out.push_str(&format!(
            "  {} #{:<3} {:<width$} src {:<3} dst {:<3} port {:<3} {}{}\n",
            if deciding { "→" } else { " " },
            c.rule.index,
            c.rule.name,
            mark(c.src_matched),
            mark(c.dst_matched),
            mark(c.port_matched),
            c.summary,
            c.rule
                .line
                .map(|l| format!("  (line {l})"))
                .unwrap_or_default(),
        ));
    }
    out
}
